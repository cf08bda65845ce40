"""Separation speed: Demucs' own ``apply_model`` vs the service end to end, same run.

The model is the full htdemucs architecture with random weights (the compute of the
real one, no download). The service time runs from the multipart POST to the job
record saying ``succeeded`` (every stem and the ZIP already in storage).

A second row runs ``apply_model`` in a fresh process with the replicas' environment
(``config.app_args.MODEL_ENV``: malloc in huge pages), so the service's gain
from that setting is shown apart from what the service itself costs. The last row runs
``apply_model`` again in this process while the app sits idle beside it: what the
served app's own processes (Ray, Serve, the other replicas) cost a forward pass that
already uses every core, without any of the service's work.

    .venv/bin/python bench/separation.py [--seconds 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemscribe_client.api import Client

from bench.common import in_replica_env, machine, publish
from config import AppArgs, Settings
from config.app_args import MODEL_ENV
from harness.audio import sine_mix
from harness.models import save_random_htdemucs
from harness.serving import wait_ready
from pipelines import audio
from pipelines.separation import load_model

RATE = 44100
MODEL = "htdemucs_random"
PORT = 28200


def direct(repo: Path, wav: np.ndarray, threads: int) -> float:
    """Seconds for normalise → apply_model → denormalise, as ``demucs.separate`` does."""
    from demucs.apply import apply_model

    torch.set_num_threads(threads)
    model: Any = load_model(MODEL, repo).models[0]
    mix = torch.from_numpy(wav)
    start = time.perf_counter()
    ref = mix.mean(0)
    normed = (mix - ref.mean()) / ref.std()
    random.seed(0)
    out = apply_model(model, normed[None], shifts=1, split=True, overlap=0.25)[0]
    _ = out * ref.std() + ref.mean()
    return time.perf_counter() - start


def service_args(repo: Path, threads: int) -> AppArgs:
    return AppArgs.model_validate(
        {
            "ingress": {"num_cpus": 0.1},
            "coordinator": {"num_cpus": 0.5, "threads": 1},
            "demucs_worker": {"num_cpus": 1, "threads": threads},
            "separation": {"models": [MODEL], "default_model": MODEL, "model_repo": str(repo)},
        }
    )


def submit_and_wait(base: str, data: bytes) -> tuple[float, dict[str, float]]:
    """Seconds from the POST to ``succeeded``, and the job's per-stage seconds.

    The job is followed as the project's client follows it (its event stream, one
    connection): a poll loop opening a new client every 0.2 s cost the machine
    about 9 CPU-seconds (client, proxy and Ingress) over a 60 s track, time taken
    from the forward pass being measured.
    """
    start = time.perf_counter()
    with Client(base, timeout=120) as client:
        files = {"file": ("song.wav", data)}
        job = client.call(
            "POST", "/v1/separations", files=files, data={"shifts": "1", "cache": "false"}
        )
        status = client.follow(job["job_id"], on_progress=lambda _: None)
    elapsed = time.perf_counter() - start
    if status["status"] != "succeeded":
        raise RuntimeError(f"job ended {status['status']}: {status['error']}")
    return elapsed, dict(status.get("timings", {}))


def service(
    repo: Path, data: bytes, wav: np.ndarray, threads: int, repeats: int, work: Path
) -> tuple[list[tuple[float, dict[str, float]]], list[float]]:
    """The service runs, then ``apply_model`` beside the idle app."""
    import ray
    from ray import serve

    from deployments.app import compose

    ray.init(num_cpus=2 * (os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    settings = Settings(storage_backend="local", data_dir=work / "data")
    serve.run(compose(service_args(repo, threads), settings), name="bench", route_prefix="/")
    base = f"http://127.0.0.1:{PORT}"
    wait_ready(base)
    warm = audio.encode(sine_mix(2.0, RATE), RATE, format="wav")
    submit_and_wait(base, warm)  # loads the model into the worker
    try:
        runs = [submit_and_wait(base, data) for _ in range(repeats)]
        beside = [direct(repo, wav, threads) for _ in range(repeats)]
        return runs, beside
    finally:
        serve.shutdown()
        ray.shutdown()


def direct_with_replica_env(repo: Path, wav: np.ndarray, threads: int, work: Path) -> float:
    """``direct`` in a fresh process with the replicas' environment: how much of the
    service's speed is that setting."""
    np.save(work / "mix.npy", wav)
    mix = str(work / "mix.npy")
    return float(in_replica_env(__file__, "--direct", str(repo), mix, "--threads", str(threads)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--direct", nargs=2, metavar=("REPO", "MIX_NPY"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.direct:  # the child of direct_with_replica_env
        print(direct(Path(opts.direct[0]), np.load(opts.direct[1]), opts.threads))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = work / "models"
        save_random_htdemucs(repo, MODEL, seed=0)
        data = audio.encode(sine_mix(opts.seconds, RATE, seed=1), RATE, format="wav")
        wav = audio.decode(data, sample_rate=RATE, channels=2)
        ref = [direct(repo, wav, opts.threads) for _ in range(opts.repeats)]
        print(f"direct apply_model: {', '.join(f'{t:.1f} s' for t in ref)}", flush=True)
        env = [direct_with_replica_env(repo, wav, opts.threads, work) for _ in range(opts.repeats)]
        print(f"with the replicas' env: {', '.join(f'{t:.1f} s' for t in env)}", flush=True)
        runs, beside = service(repo, data, wav, opts.threads, opts.repeats, work)
    report(opts, ref, env, runs, beside)


def report(
    opts: argparse.Namespace,
    ref: list[float],
    env: list[float],
    runs: list[tuple[float, dict[str, float]]],
    beside: list[float],
) -> None:
    served = [seconds for seconds, _ in runs]
    ratio = statistics.median(served) / statistics.median(ref)
    same_env = statistics.median(served) / statistics.median(env)
    idle_cost = statistics.median(beside) / statistics.median(ref)
    stages = "\n".join(
        f"- run {i}: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(timings.items()))
        for i, (_, timings) in enumerate(runs, 1)
    )
    rows = [
        ("`apply_model` (direct, in process)", ref),
        ("`apply_model` with the replicas' environment (fresh process)", env),
        ("service end to end (POST → stems in storage)", served),
        ("`apply_model` again, the idle app running beside it", beside),
    ]
    table = "\n".join(
        f"| {name} | {statistics.median(t):.1f} s | {', '.join(f'{x:.1f}' for x in t)} |"
        for name, t in rows
    )
    env_vars = ", ".join(f"`{k}={v}`" for k, v in MODEL_ENV.items())
    body = f"""## Separation: service vs `apply_model`

{opts.seconds:.0f} s stereo track, full htdemucs architecture (random weights), CPU,
{opts.threads} torch threads on both sides, shifts=1, overlap=0.25; one DemucsWorker replica.

| path | median | runs |
|---|---|---|
{table}

**Ratio service / direct: {ratio:.3f}** (target ≤ 1.15)

The model replicas run with {env_vars}: glibc's malloc then takes what it maps in transparent
huge pages, which spares an htdemucs window about 480 000 page faults.
`apply_model` with the same setting shows how much of the service's time that
setting saves: service / that run = **{same_env:.3f}**, what the service costs
beyond the library when both allocate alike.

The idle app alone makes `apply_model` take {idle_cost:.3f}× as long: of the service's
ratio, that much is the cost of sharing the cores with the app's processes.

Where the service's time goes, per run (the job's own stage timings; `forward` is the
worker's compute summed over passes, `queue_wait` the rest of each call's round trip,
both overlapping across calls in flight):

{stages}

Machine: {machine()}
Command: `.venv/bin/python bench/separation.py --seconds {opts.seconds:g} --repeats {opts.repeats}`
"""
    publish("separation", body)


if __name__ == "__main__":
    main()
