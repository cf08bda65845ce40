"""The chunk plan: every window ``demucs.apply.apply_model`` would feed a model.

``apply_model(model, mix, shifts=S, split=True, overlap=O)`` nests three loops
around the model call: sub-models of a bag, then shifted copies of the track
(the "shift trick"), then overlapping windows of ``model.segment`` seconds.
A :class:`SeparationPlan` unrolls those loops into a flat list of
:class:`Window` records that hold only numbers, so the plan pickles cheaply and
windows can be cut, shipped to workers, run and stitched in any order.

Coordinates: a *pass* is one sub-model over one shifted copy of the track.
With shifts, apply_model zero-pads the track by ``max_shift`` on each side and
takes the pass from ``offset`` to the end of the audio, so the pass starts at
track sample ``offset - max_shift`` (<= 0); everything outside the track is
zeros, which is why :meth:`SeparationPlan.extract` reads the track with zero
fill instead of building the padded copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pipelines.separation.geometry import (
    max_shift_of,
    segment_length_of,
    stride_of,
    valid_length_of,
)
from pipelines.separation.overlap import OverlapAdd

if TYPE_CHECKING:
    from pipelines.separation.models import Separator

__all__ = ["Pass", "SeparationPlan", "Window"]


@dataclass(frozen=True)
class Pass:
    """One sub-model over one (possibly shifted) copy of the track."""

    sub_model: int
    shift: int
    start: int
    """Track sample where the pass begins; negative when shifted."""
    length: int
    trim: int
    """Samples cut from the start of the pass output to realign it with the track."""
    segment_length: int
    stride: int
    n_windows: int


@dataclass(frozen=True)
class Window:
    """One model call: a chunk of a pass, padded to what the model accepts."""

    sub_model: int
    shift: int
    index: int
    offset: int
    """Start of the chunk within its pass."""
    length: int
    """Samples in the chunk; the model output is centre-trimmed to this."""
    start: int
    """Track sample where the padded input begins (may be negative: zeros)."""
    padded_length: int

    @property
    def key(self) -> tuple[int, int, int]:
        """(sub_model, shift, index): unique within a plan."""
        return (self.sub_model, self.shift, self.index)


def _pass_windows(passing: Pass, model: Any) -> list[Window]:
    """The windows apply_model's split loop cuts from one pass."""
    windows: list[Window] = []
    valid: dict[int, int] = {}
    for index, offset in enumerate(range(0, passing.length, passing.stride)):
        chunk = min(passing.length - offset, passing.segment_length)
        if chunk not in valid:
            valid[chunk] = valid_length_of(model, chunk)
        padded = valid[chunk]
        # TensorChunk.padded centres the chunk: the extra context is delta // 2 on the left.
        first = passing.start + offset - (padded - chunk) // 2
        windows.append(
            Window(passing.sub_model, passing.shift, index, offset, chunk, first, padded)
        )
    return windows


def _pass_key(passing: Pass) -> tuple[int, int]:
    return (passing.sub_model, passing.shift)


def _check_offsets(separator: Separator, shift_offsets: list[list[int]] | None) -> list[list[int]]:
    n_models = len(separator.models)
    if not shift_offsets or all(len(row) == 0 for row in shift_offsets):
        return [[] for _ in range(n_models)]
    if len(shift_offsets) != n_models:
        raise ValueError(
            f"Expected shift offsets for {n_models} sub-models, got {len(shift_offsets)}."
        )
    if len({len(row) for row in shift_offsets}) != 1:
        raise ValueError("Every sub-model needs the same number of shift offsets.")
    max_shift = max_shift_of(separator.samplerate)
    if any(not 0 <= offset <= max_shift for row in shift_offsets for offset in row):
        raise ValueError(f"Shift offsets must lie in [0, {max_shift}].")
    return [list(row) for row in shift_offsets]


@dataclass(frozen=True)
class SeparationPlan:
    """Every window of a separation, with the numbers needed to stitch them.

    Holds no model weights: cheap to pickle and ship with the windows.
    """

    length: int
    audio_channels: int
    sources: tuple[str, ...]
    overlap: float
    shift_offsets: tuple[tuple[int, ...], ...]
    weights: tuple[tuple[float, ...], ...]
    passes: tuple[Pass, ...]
    windows: list[Window]

    @classmethod
    def build(
        cls,
        separator: Separator,
        length: int,
        *,
        overlap: float = 0.25,
        shift_offsets: list[list[int]] | None = None,
    ) -> SeparationPlan:
        """Plan ``apply_model(model, mix, shifts, split=True, overlap)`` on ``length`` samples.

        ``shift_offsets`` comes from :func:`draw_shift_offsets` (per sub-model,
        per shift); None or empty means no shifts.
        """
        if length < 1:
            raise ValueError("Cannot plan a separation of an empty track.")
        offsets = _check_offsets(separator, shift_offsets)
        max_shift = max_shift_of(separator.samplerate)
        passes: list[Pass] = []
        windows: list[Window] = []
        for m, model in enumerate(separator.models):
            segment_length = segment_length_of(model)
            stride = stride_of(segment_length, overlap)
            # Without shifts a pass is the track itself: start 0, nothing to trim.
            runs = [(s, o - max_shift, length + max_shift - o) for s, o in enumerate(offsets[m])]
            for shift, start, pass_length in runs or [(0, 0, length)]:
                passing = Pass(
                    sub_model=m,
                    shift=shift,
                    start=start,
                    length=pass_length,
                    trim=-start,
                    segment_length=segment_length,
                    stride=stride,
                    n_windows=len(range(0, pass_length, stride)),
                )
                passes.append(passing)
                windows.extend(_pass_windows(passing, model))
        return cls(
            length=length,
            audio_channels=separator.audio_channels,
            sources=tuple(separator.sources),
            overlap=overlap,
            shift_offsets=tuple(tuple(row) for row in offsets),
            weights=tuple(tuple(row) for row in separator.weights),
            passes=tuple(passes),
            windows=windows,
        )

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def shifts(self) -> int:
        """Shifted copies of the track per sub-model (0: no shift trick)."""
        return len(self.shift_offsets[0]) if self.shift_offsets else 0

    def pass_of(self, window: Window) -> Pass:
        """The pass a window belongs to."""
        return self.passes[window.sub_model * max(self.shifts, 1) + window.shift]

    def extract(self, wav: npt.NDArray[np.float32], window: Window) -> npt.NDArray[np.float32]:
        """The padded model input for ``window``: (audio_channels, padded_length) float32."""
        if wav.shape != (self.audio_channels, self.length):
            raise ValueError(
                f"Expected a track of shape {(self.audio_channels, self.length)}, got {wav.shape}."
            )
        out = np.zeros((self.audio_channels, window.padded_length), dtype=np.float32)
        lo, hi = (
            max(0, window.start),
            min(self.length, window.start + window.padded_length),
        )
        if hi > lo:
            out[:, lo - window.start : hi - window.start] = wav[:, lo:hi]
        return out

    def extract_batch(
        self, wav: npt.NDArray[np.float32], windows: list[Window]
    ) -> npt.NDArray[np.float32]:
        """Stack the inputs of windows of one shape into a (B, channels, padded_length) batch."""
        return np.stack([self.extract(wav, window) for window in windows])

    def batches(self, max_batch: int) -> list[list[Window]]:
        """Windows grouped by (sub_model, padded_length), at most ``max_batch`` per group."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}.")
        groups: dict[tuple[int, int], list[Window]] = {}
        for window in self.windows:
            groups.setdefault((window.sub_model, window.padded_length), []).append(window)
        return [
            group[i : i + max_batch]
            for group in groups.values()
            for i in range(0, len(group), max_batch)
        ]

    def in_track_order(self, max_batch: int) -> list[list[Window]]:
        """Batches of consecutive windows of one pass, ordered by where they start in
        the track: the order that lets a streaming stitch hand on finished audio early.

        A batch holds windows of one padded length (one shape), at most ``max_batch``.
        """
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}.")
        batches: list[list[Window]] = []
        for passing in self.passes:
            windows = [w for w in self.windows if (w.sub_model, w.shift) == _pass_key(passing)]
            batch: list[Window] = []
            for window in windows:
                if batch and (
                    len(batch) == max_batch or batch[0].padded_length != window.padded_length
                ):
                    batches.append(batch)
                    batch = []
                batch.append(window)
            if batch:
                batches.append(batch)
        return sorted(batches, key=lambda b: (self._track_start(b[0]), b[0].key))

    def _track_start(self, window: Window) -> int:
        return self.pass_of(window).start + window.offset

    def accumulator(self) -> OverlapAdd:
        """A fresh overlap-add that stitches this plan's window outputs."""
        return OverlapAdd(self)
