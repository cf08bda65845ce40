"""Overlap-add: stitch window outputs back into whole stems, in any order.

Reproduces the arithmetic of ``demucs.apply.apply_model`` around the model
call: centre-trim each output to its chunk, weight it with a triangle
(``transition_power=1``), sum per pass and divide by the summed weights;
average the shifted passes after realigning them; combine the sub-models of a
bag per source with the bag weights.

Memory stays bounded: one sum buffer per pass that still has windows missing,
one per sub-model that still has passes missing, and the final estimate.
Buffers are folded into the next level as soon as they are complete.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pipelines.separation.plan import Pass, SeparationPlan, Window

__all__ = [
    "OverlapAdd",
    "center_trim",
    "pass_weight_sum",
    "transition_weight",
    "weight_sum_between",
]

Array = npt.NDArray[np.float32]


@lru_cache(maxsize=8)
def transition_weight(segment_length: int) -> Array:
    """apply_model's triangular cross-fade for one segment, peak 1 in the middle."""
    half = segment_length // 2
    ramp = np.concatenate([np.arange(1, half + 1), np.arange(segment_length - half, 0, -1)])
    as_float = ramp.astype(np.float32)
    # Divide in float32 as torch does, so the weights match it bit for bit.
    weight: Array = as_float / as_float.max()
    weight.flags.writeable = False
    return weight


def pass_weight_sum(passing: Pass) -> Array:
    """Summed window weights over one pass: what the weighted sum is divided by."""
    total = np.zeros(passing.length, dtype=np.float32)
    weight = transition_weight(passing.segment_length)
    for offset in range(0, passing.length, passing.stride):
        chunk = min(passing.length - offset, passing.segment_length)
        total[offset : offset + chunk] += weight[:chunk]
    return total


def weight_sum_between(passing: Pass, first: int, end: int) -> Array:
    """``pass_weight_sum(passing)[first:end]`` without building the whole pass.

    The same float32 additions in the same order (windows by offset), so the
    streaming stitch divides by exactly what the whole-pass stitch divides by.
    """
    total = np.zeros(end - first, dtype=np.float32)
    weight = transition_weight(passing.segment_length)
    earliest = max(0, first - passing.segment_length + 1)
    start = -(-earliest // passing.stride) * passing.stride  # first window that can reach
    for offset in range(start, min(end, passing.length), passing.stride):
        chunk = min(passing.length - offset, passing.segment_length)
        lo, hi = max(offset, first), min(offset + chunk, end)
        if hi > lo:
            total[lo - first : hi - first] += weight[lo - offset : hi - offset]
    return total


def center_trim(output: Array, length: int) -> Array:
    """Keep the middle ``length`` samples; an odd excess loses its extra sample on the right."""
    delta = output.shape[-1] - length
    if delta < 0:
        raise ValueError(f"Model output of {output.shape[-1]} samples is shorter than {length}.")
    return output[..., delta // 2 : delta // 2 + length]


class OverlapAdd:
    """Accumulates window outputs of one :class:`SeparationPlan`.

    Call :meth:`add` once per window, in any order, then :meth:`result`.
    """

    def __init__(self, plan: SeparationPlan) -> None:
        self._plan = plan
        self._windows = {window.key: window for window in plan.windows}
        self._missing: dict[tuple[int, int], set[int]] = {}
        for window in plan.windows:
            self._missing.setdefault((window.sub_model, window.shift), set()).add(window.index)
        self._pass_sums: dict[tuple[int, int], Array] = {}
        self._model_sums: dict[int, Array] = {}
        self._passes_left = {m: max(plan.shifts, 1) for m in range(len(plan.weights))}
        self._estimate: Array | None = None
        self._result: Array | None = None
        self._added = 0

    @property
    def added(self) -> int:
        """Windows added so far (progress numerator; ``len(plan)`` is the denominator)."""
        return self._added

    @property
    def complete(self) -> bool:
        """Whether every window of the plan has been added."""
        return self._added == len(self._windows)

    def add(self, window: Window, output: Array) -> None:
        """Add the model output (sources, channels, padded_length) of one window."""
        if self._windows.get(window.key) != window:
            raise ValueError(f"Window {window.key} does not belong to this plan.")
        pass_key = (window.sub_model, window.shift)
        if window.index not in self._missing[pass_key]:
            raise ValueError(f"Window {window.key} was already added.")
        expected = (len(self._plan.sources), self._plan.audio_channels)
        if output.ndim != 3 or output.shape[:2] != expected:
            raise ValueError(
                f"Expected output of shape {expected} + (samples,), got {output.shape}."
            )
        passing = self._plan.pass_of(window)
        buffer = self._pass_sums.get(pass_key)
        if buffer is None:
            buffer = np.zeros((*expected, passing.length), dtype=np.float32)
            self._pass_sums[pass_key] = buffer
        chunk = center_trim(output.astype(np.float32, copy=False), window.length)
        weight = transition_weight(passing.segment_length)[: window.length]
        buffer[..., window.offset : window.offset + window.length] += weight * chunk
        self._missing[pass_key].discard(window.index)
        self._added += 1
        if not self._missing[pass_key]:
            self._finish_pass(passing)

    def _finish_pass(self, passing: Pass) -> None:
        buffer = self._pass_sums.pop((passing.sub_model, passing.shift))
        buffer /= pass_weight_sum(passing)
        # A shifted pass starts before the track: drop the lead so it realigns.
        aligned = buffer[..., passing.trim : passing.trim + self._plan.length]
        m = passing.sub_model
        if m in self._model_sums:
            self._model_sums[m] += aligned
        else:
            self._model_sums[m] = aligned
        self._passes_left[m] -= 1
        if self._passes_left[m] == 0:
            model_out = self._model_sums.pop(m)
            if self._plan.shifts:
                model_out /= self._plan.shifts
            self._fold_model(m, model_out)

    def _fold_model(self, m: int, model_out: Array) -> None:
        for k, weight in enumerate(self._plan.weights[m]):
            model_out[k] *= weight
        if self._estimate is None:
            self._estimate = model_out
        else:
            self._estimate += model_out

    def result(self) -> Array:
        """The stems (sources, channels, length) once every window was added."""
        if self._result is not None:
            return self._result
        if not self.complete or self._estimate is None:
            missing = len(self._windows) - self._added
            raise RuntimeError(f"{missing} of {len(self._windows)} windows were not added yet.")
        estimate = self._estimate
        for k in range(estimate.shape[0]):
            total = 0.0
            for row in self._plan.weights:
                total += row[k]
            estimate[k] /= total
        self._result = np.ascontiguousarray(estimate)
        return self._result
