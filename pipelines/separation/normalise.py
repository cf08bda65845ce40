"""Whole-track normalisation around a Demucs separation.

Demucs 4.1 (``demucs.api.Separator.separate_tensor``) feeds the model
``(wav - mean) / (std + 1e-8)`` where mean and std are those of the
channel-averaged track, and maps the stems back with ``* (std + 1e-8) + mean``.
The statistics cover the whole track, so the coordinator computes them once
before any window is cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["EPSILON", "Normalisation", "denormalise", "normalise"]

EPSILON = 1e-8
"""Added to the standard deviation, as demucs does, so silence never divides by zero."""


@dataclass(frozen=True)
class Normalisation:
    """Statistics of one track: plain floats, so a job record can store them.

    ``std`` is the unbiased standard deviation (torch's default) of the
    channel-averaged track; 0.0 for a constant or one-sample track.
    """

    mean: float
    std: float

    @property
    def scale(self) -> float:
        """What the track is divided by before the model sees it."""
        return self.std + EPSILON

    @property
    def output_scale(self) -> float:
        """What the stems are multiplied by afterwards.

        A constant track (digital silence) is 0 after normalisation, yet a
        model maps zeros to small non-zero values; demucs would return those
        times 1e-8. Using 0 instead returns the constant itself, so silence in
        gives exact silence out.
        """
        return self.scale if self.std > 0 else 0.0


def normalise(
    wav: npt.NDArray[np.float32],
) -> tuple[npt.NDArray[np.float32], Normalisation]:
    """Normalise a (channels, samples) track with its whole-track statistics."""
    if wav.ndim != 2 or wav.shape[-1] == 0:
        raise ValueError(f"Expected a non-empty (channels, samples) array, got shape {wav.shape}.")
    # Statistics in float64 stay exact to float32 precision however long the track.
    ref = wav.astype(np.float32).mean(axis=0, dtype=np.float32).astype(np.float64)
    mean = float(ref.mean())
    std = float(ref.std(ddof=1)) if ref.size > 1 else 0.0
    norm = Normalisation(mean=mean, std=std)
    out = (wav.astype(np.float32) - np.float32(mean)) / np.float32(norm.scale)
    return out.astype(np.float32, copy=False), norm


def denormalise(sources: npt.NDArray[np.float32], norm: Normalisation) -> npt.NDArray[np.float32]:
    """Map model output (sources, channels, samples) back to the track's level."""
    out = sources.astype(np.float32) * np.float32(norm.output_scale) + np.float32(norm.mean)
    return out.astype(np.float32, copy=False)
