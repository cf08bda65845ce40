"""The streaming stitch equals the whole-track one, whatever the window order."""

from __future__ import annotations

import random
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from pipelines.separation import SeparationPlan, Separator, draw_shift_offsets
from pipelines.separation.overlap import pass_weight_sum, weight_sum_between
from pipelines.separation.stream import SampleRing, StreamingOverlapAdd

pytestmark = pytest.mark.unit

Array = npt.NDArray[np.float32]
SOURCES = ["drums", "bass", "other", "vocals"]


class _Shape(torch.nn.Module):
    """Only the attributes the plan reads: windows of ``segment`` seconds at 100 Hz."""

    def __init__(self, segment: float, pad: int = 0) -> None:
        super().__init__()
        self.samplerate = 100
        self.segment = Fraction(segment).limit_denominator(1000)
        self.sources = SOURCES
        self.audio_channels = 2
        self._pad = pad

    def valid_length(self, length: int) -> int:
        return length + self._pad


def separator(n_models: int = 1, pad: int = 0) -> Separator:
    models: list[torch.nn.Module] = [_Shape(1.0 + 0.3 * m, pad) for m in range(n_models)]
    weights = [[1.0 + m, 0.5, 2.0 - m * 0.5, 1.0] for m in range(n_models)]
    return Separator("shape", SOURCES, 100, 2, models, weights)


def plan_of(sep: Separator, length: int, overlap: float, shifts: int) -> SeparationPlan:
    offsets = draw_shift_offsets(sep, shifts, seed=5, length=length, overlap=overlap)
    return SeparationPlan.build(sep, length, overlap=overlap, shift_offsets=offsets)


def outputs_for(plan: SeparationPlan, seed: int) -> dict[Any, Array]:
    rng = np.random.default_rng(seed)
    shape = (len(plan.sources), plan.audio_channels)
    return {
        w.key: rng.standard_normal((*shape, w.padded_length)).astype(np.float32)
        for w in plan.windows
    }


def whole(plan: SeparationPlan, outputs: dict[Any, Array]) -> Array:
    acc = plan.accumulator()
    for window in plan.windows:
        acc.add(window, outputs[window.key])
    return acc.result()


def streamed(plan: SeparationPlan, outputs: dict[Any, Array], order: list[Any]) -> Array:
    stream = StreamingOverlapAdd(plan)
    pieces = [stream.add(window, outputs[window.key]) for window in order]
    assert stream.complete
    return np.concatenate(pieces, axis=-1)


CASES = [
    # (sub-models, length, overlap, shifts, pad)
    (1, 1, 0.25, 0, 0),
    (1, 99, 0.25, 0, 0),
    (1, 1013, 0.25, 0, 0),
    (1, 1013, 0.37, 1, 0),
    (1, 777, 0.9, 2, 0),
    (2, 1501, 0.25, 2, 0),
    (2, 2003, 0.61, 1, 7),
    (3, 431, 0.5, 3, 3),
]


@pytest.mark.parametrize(("models", "length", "overlap", "shifts", "pad"), CASES)
def test_streaming_in_track_order_is_bit_identical(
    models: int, length: int, overlap: float, shifts: int, pad: int
) -> None:
    plan = plan_of(separator(models, pad), length, overlap, shifts)
    outputs = outputs_for(plan, seed=length)
    order = [w for batch in plan.in_track_order(3) for w in batch]
    assert sorted(w.key for w in order) == sorted(w.key for w in plan.windows)
    np.testing.assert_array_equal(streamed(plan, outputs, order), whole(plan, outputs))


@pytest.mark.parametrize(("models", "length", "overlap", "shifts", "pad"), CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_in_random_order_equals_the_whole_track_plan(
    models: int, length: int, overlap: float, shifts: int, pad: int, seed: int
) -> None:
    plan = plan_of(separator(models, pad), length, overlap, shifts)
    outputs = outputs_for(plan, seed=seed)
    order = list(plan.windows)
    random.Random(seed).shuffle(order)
    expected = whole(plan, outputs)
    np.testing.assert_allclose(streamed(plan, outputs, order), expected, rtol=0, atol=1e-6)


def test_in_track_order_keeps_the_rings_short_on_a_long_track() -> None:
    plan = plan_of(separator(2), 100 * 600, 0.25, 2)  # 10 minutes at 100 Hz, 4 passes
    outputs = outputs_for(plan, seed=0)
    stream = StreamingOverlapAdd(plan)
    longest = 0
    for batch in plan.in_track_order(2):
        for window in batch:
            stream.add(window, outputs[window.key])
        longest = max(longest, max(p.ring.capacity for p in stream._passes.values()))
    assert stream.complete
    assert longest <= 4 * 130  # a few windows, not the track


def test_weight_sum_between_equals_the_slice_of_the_whole_pass() -> None:
    plan = plan_of(separator(1), 1013, 0.37, 1)
    passing = plan.passes[0]
    full = pass_weight_sum(passing)
    for first, end in [(0, 1), (0, passing.length), (5, 300), (400, 401), (990, passing.length)]:
        np.testing.assert_array_equal(weight_sum_between(passing, first, end), full[first:end])


def test_sample_ring_sums_across_the_wrap_and_grows() -> None:
    ring = SampleRing((1,), 4)
    ring.add(0, np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(ring.take(2), [[1, 1]])
    ring.add(2, np.full((1, 3), 2, np.float32))  # wraps round the end of the buffer
    ring.add(3, np.full((1, 6), 3, np.float32))  # reaches past it: grows
    np.testing.assert_array_equal(ring.take(8), [[3, 5, 5, 3, 3, 3, 3, 0]])
    with pytest.raises(ValueError, match="already handed on"):
        ring.add(1, np.ones((1, 1), np.float32))


def test_streaming_refuses_duplicates_and_strangers() -> None:
    plan = plan_of(separator(1), 300, 0.25, 0)
    other = plan_of(separator(1), 301, 0.25, 0)
    stream = StreamingOverlapAdd(plan)
    outputs = outputs_for(plan, seed=0)
    first = plan.windows[0]
    stream.add(first, outputs[first.key])
    with pytest.raises(ValueError, match="already added"):
        stream.add(first, outputs[first.key])
    with pytest.raises(ValueError, match="does not belong"):
        stream.add(other.windows[-1], outputs_for(other, 1)[other.windows[-1].key])
