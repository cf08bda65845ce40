"""The body of a separation job: decode → normalise → plan → fan out → overlap-add → encode.

The forward pass is injected (``BatchRunner``), so the same body runs with remote
GPU workers in the service and with an in-process model in tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from pipelines import audio
from pipelines.jobs.params import SeparationParams
from pipelines.jobs.runner import JobContext
from pipelines.separation import (
    SeparationPlan,
    Separator,
    Window,
    denormalise,
    draw_shift_offsets,
    normalise,
)

BatchRunner = Callable[[int, np.ndarray], Awaitable[np.ndarray]]
"""(sub-model index, windows (B, C, L)) -> model output (B, S, C, L)."""


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
    source: audio.AudioSource,
    max_seconds: float,
) -> dict[str, np.ndarray]:
    """Separate ``source``, write every requested stem plus a ZIP; return the stems."""
    sep = engine.separator
    wav = await asyncio.to_thread(
        audio.decode,
        source,
        sample_rate=sep.samplerate,
        channels=sep.audio_channels,
        max_duration=max_seconds,
    )
    ctx.record.info.update(duration=wav.shape[-1] / sep.samplerate, sample_rate=sep.samplerate)
    sources = await _run_windows(ctx, engine, params, wav)
    stems = select_stems(sources, sep.sources, params)
    await _write_stems(ctx, stems, params, sep.samplerate)
    return stems


async def _run_windows(
    ctx: JobContext, engine: SeparationEngine, params: SeparationParams, wav: np.ndarray
) -> np.ndarray:
    sep = engine.separator
    normed, norm = normalise(wav)
    seed = int(ctx.record.info.get("seed", params.seed or 0))
    offsets = draw_shift_offsets(
        sep, params.shifts, seed, length=wav.shape[-1], overlap=params.overlap
    )
    plan = SeparationPlan.build(sep, wav.shape[-1], overlap=params.overlap, shift_offsets=offsets)
    total = len(plan.windows)
    ctx.record.info["windows"] = total
    accumulator = plan.accumulator()
    limit = asyncio.Semaphore(engine.max_inflight)
    done = 0

    async def run(batch: list[Window]) -> None:
        nonlocal done
        async with limit:
            await ctx.check_cancel()
            inputs = np.stack([plan.extract(normed, window) for window in batch])
            outputs = await engine.run_batch(batch[0].sub_model, inputs)
            for window, output in zip(batch, outputs, strict=True):
                accumulator.add(window, output)
            done += len(batch)
            await ctx.progress(done / total)

    try:
        async with asyncio.TaskGroup() as group:
            for batch in plan.batches(engine.batch_size):
                group.create_task(run(batch))
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the first failure (cancel, worker error) decides
    return denormalise(accumulator.result(), norm)


def select_stems(
    sources: np.ndarray, names: list[str], params: SeparationParams
) -> dict[str, np.ndarray]:
    """The stems asked for; ``two_stems=x`` gives ``x`` and ``no_x`` (the sum of the rest)."""
    if params.two_stems is not None:
        index = names.index(params.two_stems)
        rest = [sources[i] for i in range(len(names)) if i != index]
        return {params.two_stems: sources[index], f"no_{params.two_stems}": np.sum(rest, axis=0)}
    return {name: sources[names.index(name)] for name in params.stems or names}


async def _write_stems(
    ctx: JobContext, stems: dict[str, np.ndarray], params: SeparationParams, rate: int
) -> None:
    extension = audio.extension(params.format)
    content_type = audio.content_type(params.format)
    files: dict[str, bytes] = {}
    for name, stem in stems.items():
        data = await asyncio.to_thread(_encode_stem, stem, rate, params)
        filename = f"{name}.{extension}"
        files[filename] = data
        ctx.record.outputs.append(await ctx.write_output(name, filename, data, content_type))
        await ctx.check_cancel()
    ctx.record.archive = await ctx.write_archive(files, "stems.zip")


def _encode_stem(stem: np.ndarray, rate: int, params: SeparationParams) -> bytes:
    clipped = audio.clip(stem, params.clip)
    return audio.encode(
        clipped,
        rate,
        format=params.format,
        bit_depth=params.bit_depth,
        mp3_bitrate=params.mp3_bitrate,
    )
