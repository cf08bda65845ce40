"""A decoded track on local disk, and its normalisation statistics gathered on the way.

The coordinator never holds a whole track: it decodes block by block into a
scratch file of interleaved float32 samples while :class:`RunningStats` folds
each block into the whole-track mean and standard deviation, then cuts every
window from the file (:meth:`ScratchTrack.window`), normalised as
:func:`~pipelines.separation.normalise.normalise` would have normalised it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pipelines.audio import interleave
from pipelines.separation.normalise import Normalisation

__all__ = ["RunningStats", "ScratchTrack"]

Array = npt.NDArray[np.float32]
FLOAT_BYTES = 4


class RunningStats:
    """Mean and unbiased std of the channel-averaged track, one block at a time.

    Blocks are merged with Chan et al.'s pairwise update in float64, the
    streaming form of the two-pass computation in ``normalise``: equal to it
    within float64 rounding, far below what float32 samples can show.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean = 0.0
        self._m2 = 0.0  # summed squared deviations from the mean

    def add(self, block: Array) -> None:
        """Fold in a ``(channels, n)`` block."""
        # Decoded blocks are often transposed views of interleaved samples; numpy's mean
        # across channels of such a view is many times slower than of a copy.
        ref = np.ascontiguousarray(block, dtype=np.float32).mean(axis=0, dtype=np.float32)
        ref = ref.astype(np.float64)
        n = ref.size
        if n == 0:
            return
        mean = float(ref.mean())
        m2 = float(np.square(ref - mean).sum())
        total = self.count + n
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def normalisation(self) -> Normalisation:
        """The statistics of everything added (std 0.0 for fewer than two samples)."""
        if self.count == 0:
            raise ValueError("No samples were added.")
        std = float(np.sqrt(self._m2 / (self.count - 1))) if self.count > 1 else 0.0
        return Normalisation(mean=self._mean, std=std)


class ScratchTrack:
    """``(channels, length)`` float32 audio kept in a file, read a window at a time."""

    def __init__(self, path: Path, channels: int, length: int = 0) -> None:
        self.path = path
        self.channels = channels
        self.length = length

    @classmethod
    def write(cls, path: Path, channels: int, blocks: Iterable[Array]) -> ScratchTrack:
        """Write ``blocks`` (each ``(channels, n)``) to ``path``, replacing it."""
        track = cls(path, channels)
        with path.open("wb") as file:
            for block in blocks:
                file.write(interleave(block.astype(np.float32, copy=False)).tobytes())
                track.length += block.shape[-1]
        return track

    def read(self, first: int, end: int) -> Array:
        """Samples ``first..end`` as ``(channels, end - first)``; zeros outside the track."""
        out = np.zeros((end - first, self.channels), dtype=np.float32)
        lo, hi = max(0, first), min(self.length, end)
        if hi > lo:
            frame = self.channels * FLOAT_BYTES
            with self.path.open("rb", buffering=0) as file:
                data = os.pread(file.fileno(), (hi - lo) * frame, lo * frame)
            out[lo - first : hi - first] = np.frombuffer(data, np.float32).reshape(
                -1, self.channels
            )
        return out.T

    def blocks(self, block: int) -> Iterable[Array]:
        """The whole track, ``block`` samples at a time."""
        for first in range(0, self.length, block):
            yield np.ascontiguousarray(self.read(first, min(first + block, self.length)))

    def window(self, first: int, length: int, norm: Normalisation) -> Array:
        """A normalised model input: as ``normalise`` then ``plan.extract`` would cut it.

        Zeros outside the track stay zeros, as apply_model pads the normalised track.
        """
        raw = self.read(first, first + length)
        out = (raw - np.float32(norm.mean)) / np.float32(norm.scale)
        lo, hi = max(0, -first), max(0, min(length, self.length - first))
        out[:, :lo] = 0.0
        out[:, hi:] = 0.0
        return np.ascontiguousarray(out, dtype=np.float32)
