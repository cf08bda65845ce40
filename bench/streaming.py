"""Live transcription latency: audio sent → first text and → final text, through Serve.

Starts its own app (tiny.en on CPU, local storage in a temp dir), streams speech at
real-time pace over WebSocket with the project's client, and measures per word.

For each word of each ``final`` (its end time ``e`` in stream seconds):
- *sent*: the wall time at which the client had sent the audio up to ``e``;
- *first text*: the arrival of the first ``partial`` whose ``[start, end]`` holds the
  word's midpoint, or of its final when no partial did; latency = arrival - sent;
- *final*: the arrival of the final holding the word - sent.

With ``--file-seconds N`` the most streams run once more while an N-second file is
transcribed through ``/v1/audio/transcriptions`` on the same Transcriber replica: live
windows take the replica's priority lane, so finals should arrive about as fast as idle.

    .venv/bin/python bench/streaming.py [--streams 1 2 3 4 8] [--chunk-ms 200] [--file-seconds 300]
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
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemscribe_client.stream import StreamResult, stream_audio

from bench.common import bench_port, publish
from bench.streaming_report import TINY_EN, Measured, Setup, decode_cost, report
from config import AppArgs, Settings
from evaluation.wer import word_error_rate
from harness.serving import wait_ready

PORT = bench_port(28300)
SPEECH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech"
CLIPS = ("story", "weather", "numbers")


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


def app_args(setup: Setup, workers: int = 2) -> AppArgs:
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
            "transcription": {
                "models": {"tiny.en": TINY_EN},
                "default_model": "tiny.en",
                "workers": min(workers, setup.threads),
            },
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


def file_wav(audio: np.ndarray, seconds: float) -> bytes:
    from pipelines import audio as codecs

    repeats = int(np.ceil(seconds * 16_000 / len(audio)))
    return codecs.encode(
        np.tile(audio, repeats)[None, : int(seconds * 16_000)], 16_000, format="wav"
    )


async def with_file_job(
    base: str, url: str, audio: np.ndarray, setup: Setup, chunk_ms: int
) -> tuple[list[StreamResult], bool]:
    """The streams, with a file transcription running on the same replica when asked."""
    import httpx

    if not setup.file_seconds:
        return await run_streams(url, audio, setup.streams, chunk_ms), False
    data = file_wav(audio, setup.file_seconds)
    async with httpx.AsyncClient(timeout=3600) as client:
        files = {"file": ("long.wav", data)}
        job = asyncio.create_task(
            client.post(f"{base}/v1/audio/transcriptions", files=files, data={"model": "whisper-1"})
        )
        await asyncio.sleep(3.0)  # the file is being decoded before the first stream starts
        results = await run_streams(url, audio, setup.streams, chunk_ms)
        busy = not job.done()
        (await job).raise_for_status()
    return results, busy


def batch_sizes() -> list[int]:
    from ray import serve

    handle = serve.get_deployment_handle("Transcriber", "bench")
    return list(handle.stats.remote().result()["live_batch_sizes"])


def measure(
    setup: Setup, audio: np.ndarray, reference: str, chunk_ms: int, workers: int
) -> Measured:
    from ray import serve

    from deployments.app import compose

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(storage_backend="local", data_dir=Path(tmp))
        serve.run(compose(app_args(setup, workers), settings), name="bench", route_prefix="/")
        base = f"http://127.0.0.1:{PORT}"
        wait_ready(base)
        url = f"ws://127.0.0.1:{PORT}/v1/stream/transcriptions"
        warm = audio[: 16_000 * 4]  # loads tiny.en and the VAD in every replica
        asyncio.run(run_streams(url, warm, setup.replicas * 2, chunk_ms))
        warmed = len(batch_sizes()) if setup.replicas == 1 else 0
        results, busy = asyncio.run(with_file_job(base, url, audio, setup, chunk_ms))
        sizes = batch_sizes()[warmed:] if setup.replicas == 1 else []
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
    batch = statistics.mean(sizes) if sizes else float("nan")
    return Measured(setup, first_text, final, wer, statistics.median(tails), batch, busy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 3, 4, 8])
    parser.add_argument("--chunk-ms", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="CTranslate2 threads in total")
    parser.add_argument("--workers", type=int, default=2, help="CTranslate2 workers per replica")
    parser.add_argument(
        "--file-seconds",
        type=float,
        default=0.0,
        help="run the most streams again beside a file transcription this long",
    )
    parser.add_argument(
        "--split", action="store_true", help="also run the most streams on one replica per thread"
    )
    opts = parser.parse_args()
    import ray
    from ray import serve

    audio, reference = speech()
    cost = decode_cost(audio, opts.threads, opts.workers)
    ray.init(num_cpus=2 * (os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    setups = [Setup(n, 1, opts.threads) for n in opts.streams]
    if opts.file_seconds:
        setups.append(Setup(min(opts.streams), 1, opts.threads, opts.file_seconds))
    if opts.split and opts.threads > 1:
        setups.append(Setup(max(opts.streams), opts.threads, 1))
    try:
        rows = [measure(setup, audio, reference, opts.chunk_ms, opts.workers) for setup in setups]
    finally:
        serve.shutdown()
        ray.shutdown()
    body = report(rows, opts, len(audio) / 16_000, cost)
    publish("streaming", body)


if __name__ == "__main__":
    main()
