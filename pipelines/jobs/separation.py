"""The separation job, streamed through local scratch so memory does not grow with length.

decode in blocks to a scratch file (normalisation statistics on the way) → plan →
windows in track order, a bounded number in flight → streaming overlap-add → per-stem
scratch files → encode the stems from disk, two at a time, each uploaded once encoded →
ZIP as a file, written while the last stems upload → upload it.

The forward pass is injected (``BatchRunner``), so the same job runs with remote
GPU workers in the service and with an in-process model in tests.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines import audio
from pipelines.jobs.context import JobContext
from pipelines.jobs.params import SeparationParams
from pipelines.jobs.records import OutputFile
from pipelines.jobs.stems import StemScratch, write_zip
from pipelines.separation import (
    BatchOutput,
    Normalisation,
    SeparationPlan,
    Separator,
    Window,
    WindowBatch,
    draw_shift_offsets,
)
from pipelines.separation.stream import StreamingOverlapAdd
from pipelines.separation.track import RunningStats, ScratchTrack

ENCODE_LANES = 2
"""Stems encoded at once: encoding is the coordinator's CPU work, uploading its I/O,
and two lanes keep two cores busy while finished stems upload."""

BatchRunner = Callable[[WindowBatch], Awaitable[BatchOutput]]
"""A job's windows (B, C, L) -> model output (B, S, C, L) and its forward time."""


@dataclass(frozen=True)
class SeparationEngine:
    """What a separation needs besides its input: the model's shape and a forward pass."""

    separator: Separator
    run_batch: BatchRunner
    batch_size: int = 1
    max_inflight: int = 8


async def separate(
    ctx: JobContext,
    engine: SeparationEngine,
    params: SeparationParams,
    source: Path,
    folder: Path,
    max_seconds: float,
    keep: tuple[str, ...] = (),
) -> StemScratch:
    """Separate ``source``, upload every requested stem plus a ZIP.

    ``folder`` is the job's scratch folder. Returns the stems' scratch, whose float
    files are gone by then except those named in ``keep``.
    """
    sep = engine.separator
    with ctx.timed("decode"):
        track, norm = await asyncio.to_thread(decode_to_scratch, source, folder, sep, max_seconds)
    ctx.record.info.update(duration=track.length / sep.samplerate, sample_rate=sep.samplerate)
    stems = StemScratch(folder, sep.sources, params, sep.audio_channels, norm)
    await _run_windows(ctx, engine, params, track, stems, norm)
    track.path.unlink()
    await _write_outputs(ctx, stems, folder, sep.samplerate, keep)
    return stems


def decode_to_scratch(
    source: Path, folder: Path, separator: Separator, max_seconds: float
) -> tuple[ScratchTrack, Normalisation]:
    """The track as float32 in ``folder``, and its whole-track normalisation."""
    stats = RunningStats()
    blocks = audio.decode_blocks(
        source,
        sample_rate=separator.samplerate,
        channels=separator.audio_channels,
        max_duration=max_seconds,
    )

    def counted() -> Iterator[np.ndarray]:
        for block in blocks:
            stats.add(block)
            yield block

    track = ScratchTrack.write(folder / "track.f32", separator.audio_channels, counted())
    return track, stats.normalisation()


async def _run_windows(
    ctx: JobContext,
    engine: SeparationEngine,
    params: SeparationParams,
    track: ScratchTrack,
    stems: StemScratch,
    norm: Normalisation,
) -> None:
    sep = engine.separator
    seed = int(ctx.record.info.get("seed", params.seed or 0))
    offsets = draw_shift_offsets(
        sep, params.shifts, seed, length=track.length, overlap=params.overlap
    )
    plan = SeparationPlan.build(sep, track.length, overlap=params.overlap, shift_offsets=offsets)
    ctx.record.info["windows"] = len(plan)
    stitch = StreamingOverlapAdd(plan)

    async def forward(batch: list[Window]) -> np.ndarray:
        inputs = await asyncio.to_thread(_cut, track, batch, norm)
        asked = time.monotonic()
        result = await engine.run_batch(WindowBatch(ctx.job_id, batch[0].sub_model, inputs))
        ctx.add_time("forward", result.forward_seconds)
        ctx.add_time("queue_wait", max(0.0, time.monotonic() - asked - result.forward_seconds))
        return result.outputs

    async def fold(batch: list[Window], task: asyncio.Task[np.ndarray]) -> None:
        outputs = await task
        started = time.monotonic()
        await asyncio.to_thread(_stitch, stitch, stems, batch, outputs)
        ctx.add_time("stitch", time.monotonic() - started)
        await ctx.progress(stitch.added / len(plan))

    # Batches go out in track order and are folded in that order, so at most
    # ``max_inflight`` are out and the stitch's rings stay a few windows long.
    inflight: deque[tuple[list[Window], asyncio.Task[np.ndarray]]] = deque()
    async with _first_failure() as group:
        for batch in plan.in_track_order(engine.batch_size):
            await ctx.check_cancel()
            if len(inflight) >= engine.max_inflight:
                await fold(*inflight.popleft())
            inflight.append((batch, group.create_task(forward(batch))))
        while inflight:
            await fold(*inflight.popleft())
    assert stitch.complete


def _cut(track: ScratchTrack, batch: list[Window], norm: Normalisation) -> np.ndarray:
    return np.stack([track.window(w.start, w.padded_length, norm) for w in batch])


def _stitch(
    stitch: StreamingOverlapAdd, stems: StemScratch, batch: list[Window], outputs: np.ndarray
) -> None:
    for window, output in zip(batch, outputs, strict=True):
        stems.append(stitch.add(window, output))


async def _write_outputs(
    ctx: JobContext, stems: StemScratch, folder: Path, rate: int, keep: tuple[str, ...]
) -> None:
    """Encode the stems, two at a time, each uploaded once encoded; the ZIP is written
    once all are encoded, while the last stems upload."""
    params = stems.params
    extension = audio.extension(params.format)
    content_type = audio.content_type(params.format)
    outputs = folder / "outputs"
    outputs.mkdir(exist_ok=True)
    lanes = asyncio.Semaphore(ENCODE_LANES)

    async def encode(name: str) -> Path:
        target = outputs / f"{name}.{extension}"
        async with lanes:
            with ctx.timed("encode"):
                await asyncio.to_thread(stems.encode, name, target, rate, name not in keep)
        return target

    async def upload(name: str, path: Path, kind: str) -> OutputFile:
        with ctx.timed("upload"):
            return await ctx.write_output_file(name, path.name, path, kind)

    async def stem(name: str, encoded: asyncio.Task[Path]) -> OutputFile:
        return await upload(name, await encoded, content_type)

    async def archive(encoded: list[asyncio.Task[Path]]) -> OutputFile:
        files = [await task for task in encoded]
        await ctx.check_cancel()
        path = folder / "stems.zip"
        with ctx.timed("encode"):
            await asyncio.to_thread(write_zip, path, files)
        return await upload("archive", path, "application/zip")

    async with _first_failure() as group:
        encoded = {name: group.create_task(encode(name)) for name in stems.tracks}
        uploaded = [group.create_task(stem(name, task)) for name, task in encoded.items()]
        zipped = group.create_task(archive(list(encoded.values())))
    ctx.record.outputs.extend(task.result() for task in uploaded)
    ctx.record.archive = zipped.result()
    for task in encoded.values():
        task.result().unlink()
    outputs.rmdir()
    (folder / "stems.zip").unlink()


@asynccontextmanager
async def _first_failure() -> AsyncIterator[asyncio.TaskGroup]:
    """A task group that raises its first failure (a cancel, a worker or storage error)
    as itself, not wrapped in an exception group."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
