"""Windows of concurrent jobs through one forward pass (asyncio, no Ray).

A worker receives :class:`WindowBatch` calls from any number of jobs. While a
forward pass runs, the calls that arrive for the same model, sub-model and window
shape wait; when it returns, they go through the next pass together (at most
``max_windows`` windows, one call of each job in turn, so a job with many calls out
never keeps another's out of a pass), and each caller gets back exactly its own
outputs. Every
window's output is the model's output for that window alone: Demucs normalises per
window (no batch statistics), so whom a window shares a pass with changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from pipelines.scheduling import MicroBatcher
from pipelines.separation.models import BatchOutput, WindowBatch

__all__ = ["BatchKey", "PassReport", "WindowBatcher"]


@dataclass(frozen=True)
class BatchKey:
    """What windows must share to go through one forward pass."""

    model: str
    sub_model: int
    shape: tuple[int, ...]
    """(channels, padded_length) of each window."""


@dataclass(frozen=True)
class PassReport:
    """One forward pass, as the worker's metrics see it."""

    windows: int
    jobs: int
    calls: int
    waits: tuple[float, ...]
    """Seconds each call waited between arrival and the start of its pass."""
    forward_seconds: float


@dataclass
class _Call:
    batch: WindowBatch
    arrived: float


Forward = Callable[[BatchKey, np.ndarray], Awaitable[BatchOutput]]


class WindowBatcher:
    """Coalesces concurrent :class:`WindowBatch` calls into forward passes.

    ``forward(key, windows)`` runs the model once on the stacked windows;
    ``on_pass`` hears about every pass (metrics).
    """

    def __init__(
        self,
        forward: Forward,
        *,
        max_windows: int = 8,
        wait_s: float = 0.002,
        on_pass: Callable[[PassReport], None] = lambda _: None,
    ) -> None:
        self._forward = forward
        self._on_pass = on_pass
        self._batcher: MicroBatcher[BatchKey, _Call, BatchOutput] = MicroBatcher(
            self._run,
            max_batch=max_windows,
            wait_s=wait_s,
            size=lambda call: len(call.batch.windows),
            group=lambda call: call.batch.job_id,
        )
        self.passes = 0
        self.windows = 0
        self.shared_passes = 0
        """Passes whose windows came from more than one job."""

    async def run(self, model: str, batch: WindowBatch) -> BatchOutput:
        """The model's outputs for ``batch``'s windows, computed with whatever else waits."""
        key = BatchKey(model, batch.sub_model, tuple(batch.windows.shape[1:]))
        return await self._batcher.submit(key, _Call(batch, time.monotonic()))

    async def _run(self, key: BatchKey, calls: list[_Call]) -> list[BatchOutput]:
        started = time.monotonic()
        if len(calls) == 1:
            stacked = calls[0].batch.windows
        else:
            stacked = np.concatenate([call.batch.windows for call in calls])
        output = await self._forward(key, stacked)
        jobs = len({call.batch.job_id for call in calls})
        self.passes += 1
        self.windows += len(stacked)
        self.shared_passes += jobs > 1
        waits = tuple(max(0.0, started - call.arrived) for call in calls)
        self._on_pass(PassReport(len(stacked), jobs, len(calls), waits, output.forward_seconds))
        results: list[BatchOutput] = []
        first = 0
        for call in calls:
            last = first + len(call.batch.windows)
            results.append(BatchOutput(output.outputs[first:last], output.forward_seconds))
            first = last
        return results
