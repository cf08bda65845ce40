"""Streaming overlap-add: stitch window outputs and hand on finished audio early.

:class:`OverlapAdd` keeps whole-track buffers; this keeps, per pass, only the
stretch that windows still in flight can touch, in a :class:`SampleRing`. Once
every pass has received all windows that reach a track sample, that sample is
final: it is divided by the summed window weights, realigned, averaged over
shifts, combined over the bag and handed out. The arithmetic is the one of
:class:`OverlapAdd` (and so of ``demucs.apply.apply_model``); only the buffers
are bounded. Windows may arrive in any order; sent in track order
(:meth:`SeparationPlan.in_track_order`) with a bounded number in flight, the
rings stay a few windows long whatever the track length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pipelines.separation.overlap import center_trim, transition_weight, weight_sum_between

if TYPE_CHECKING:
    from pipelines.separation.plan import Pass, SeparationPlan, Window

__all__ = ["SampleRing", "StreamingOverlapAdd"]

Array = npt.NDArray[np.float32]


class SampleRing:
    """Sums over a sliding stretch of samples, ``(*shape, n)``, in a circular buffer.

    ``start`` is the absolute position of the oldest sample held. :meth:`add` sums a
    block in at any position at or after ``start`` (growing the buffer if the block
    reaches past it); :meth:`take` hands out and forgets the oldest samples.
    """

    def __init__(self, shape: tuple[int, ...], capacity: int) -> None:
        self.start = 0
        self._shape = shape
        self._data = np.zeros((*shape, max(1, capacity)), dtype=np.float32)

    @property
    def capacity(self) -> int:
        return int(self._data.shape[-1])

    def add(self, position: int, block: Array) -> None:
        """Sum ``block`` into positions ``position .. position + n``."""
        if position < self.start:
            raise ValueError(f"Position {position} was already handed on (ring at {self.start}).")
        n = block.shape[-1]
        self._reserve(position + n - self.start)
        for ring, piece in self._spans(position, n):
            self._data[..., ring] += block[..., piece]

    def take(self, n: int) -> Array:
        """The ``n`` oldest samples (a copy); the ring moves past them."""
        out = np.empty((*self._shape, n), dtype=np.float32)
        self._reserve(n)
        for ring, piece in self._spans(self.start, n):
            out[..., piece] = self._data[..., ring]
            self._data[..., ring] = 0.0
        self.start += n
        return out

    def _spans(self, position: int, n: int) -> list[tuple[slice, slice]]:
        first = position % self.capacity
        head = min(n, self.capacity - first)
        spans = [(slice(first, first + head), slice(0, head))]
        if head < n:
            spans.append((slice(0, n - head), slice(head, n)))
        return spans

    def _reserve(self, needed: int) -> None:
        if needed <= self.capacity:
            return
        held = self.take(self.capacity)
        self.start -= held.shape[-1]
        self._data = np.zeros((*self._shape, max(needed, 2 * held.shape[-1])), dtype=np.float32)
        for ring, piece in self._spans(self.start, held.shape[-1]):
            self._data[..., ring] = held[..., piece]


class _PassStitch:
    """The weighted sums of one pass, and how far they are complete."""

    def __init__(self, passing: Pass, shape: tuple[int, int]) -> None:
        self.passing = passing
        self.ring = SampleRing(shape, 2 * passing.segment_length)
        self._added: set[int] = set()
        self._next = 0  # lowest window index not added yet

    def add(self, window: Window, output: Array) -> None:
        chunk = center_trim(output.astype(np.float32, copy=False), window.length)
        weight = transition_weight(self.passing.segment_length)[: window.length]
        self.ring.add(window.offset, weight * chunk)
        self._added.add(window.index)
        while self._next in self._added:
            self._added.discard(self._next)
            self._next += 1

    @property
    def final_until(self) -> int:
        """Pass samples before this have all their windows (track coordinates)."""
        p = self.passing
        complete = p.length if self._next >= p.n_windows else self._next * p.stride
        return complete - p.trim

    def take(self, first: int, end: int) -> Array:
        """Track samples ``first..end``, divided by their window weights."""
        p = self.passing
        lead = first + p.trim - self.ring.start  # a shifted pass starts before the track
        if lead > 0:
            self.ring.take(lead)
        sums = self.ring.take(end - first)
        sums /= weight_sum_between(p, first + p.trim, end + p.trim)
        return sums


class StreamingOverlapAdd:
    """Stitches the window outputs of one plan, handing on each final stretch.

    Call :meth:`add` once per window, in any order; each call returns the stems
    ``(sources, channels, n)`` of the track samples that became final (``n`` may
    be 0). Concatenated, the returns equal ``OverlapAdd(plan).result()``.
    """

    def __init__(self, plan: SeparationPlan) -> None:
        self._plan = plan
        self._windows = {window.key: window for window in plan.windows}
        shape = (len(plan.sources), plan.audio_channels)
        self._passes = {(p.sub_model, p.shift): _PassStitch(p, shape) for p in plan.passes}
        self._done: set[tuple[int, int, int]] = set()
        self._totals = [sum(row[k] for row in plan.weights) for k in range(len(plan.sources))]
        self.emitted = 0
        """Track samples handed on so far."""

    @property
    def added(self) -> int:
        """Windows added so far (progress numerator; ``len(plan)`` is the denominator)."""
        return len(self._done)

    @property
    def complete(self) -> bool:
        """Whether every window was added and every sample handed on."""
        return self.added == len(self._windows) and self.emitted == self._plan.length

    def add(self, window: Window, output: Array) -> Array:
        """Add one window's model output (sources, channels, padded_length)."""
        if self._windows.get(window.key) != window:
            raise ValueError(f"Window {window.key} does not belong to this plan.")
        if window.key in self._done:
            raise ValueError(f"Window {window.key} was already added.")
        expected = (len(self._plan.sources), self._plan.audio_channels)
        if output.ndim != 3 or output.shape[:2] != expected:
            raise ValueError(
                f"Expected output of shape {expected} + (samples,), got {output.shape}."
            )
        self._passes[(window.sub_model, window.shift)].add(window, output)
        self._done.add(window.key)
        return self._emit()

    def _emit(self) -> Array:
        final = min(stitch.final_until for stitch in self._passes.values())
        end = max(self.emitted, min(final, self._plan.length))
        first, self.emitted = self.emitted, end
        if end == first:
            return np.zeros((len(self._plan.sources), self._plan.audio_channels, 0), np.float32)
        return self._combine(first, end)

    def _combine(self, first: int, end: int) -> Array:
        """Average each sub-model's shifted passes, then weigh and sum the bag, as
        :class:`OverlapAdd` does."""
        plan = self._plan
        estimate: Array | None = None
        for m, weights in enumerate(plan.weights):
            model_out: Array | None = None
            for shift in range(max(plan.shifts, 1)):
                aligned = self._passes[(m, shift)].take(first, end)
                model_out = aligned if model_out is None else model_out + aligned
            assert model_out is not None
            if plan.shifts:
                model_out /= plan.shifts
            for k, weight in enumerate(weights):
                model_out[k] *= weight
            estimate = model_out if estimate is None else estimate + model_out
        assert estimate is not None
        for k, total in enumerate(self._totals):
            estimate[k] /= total
        return estimate
