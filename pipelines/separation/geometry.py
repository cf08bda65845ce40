"""Window geometry, computed exactly as ``demucs.apply.apply_model`` does."""

from __future__ import annotations

from typing import Any

__all__ = ["max_shift_of", "segment_length_of", "stride_of", "valid_length_of"]


def max_shift_of(samplerate: int) -> int:
    """Largest shift apply_model draws: half a second."""
    return int(0.5 * samplerate)


def segment_length_of(model: Any) -> int:
    """Samples per window: ``model.segment`` seconds (a Fraction for HTDemucs)."""
    return int(model.samplerate * model.segment)


def stride_of(segment_length: int, overlap: float) -> int:
    """Samples between window starts; refuses overlaps that leave no stride."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}.")
    stride = int((1 - overlap) * segment_length)
    if stride < 1:
        raise ValueError(
            f"overlap {overlap} leaves no stride for a {segment_length}-sample segment."
        )
    return stride


def valid_length_of(model: Any, length: int) -> int:
    """Input length the model wants for a chunk, as apply_model asks it.

    HTDemucs answers its training length (every window has one shape), older
    Demucs a length its convolutions divide evenly, HDemucs has no preference.
    """
    valid_length = getattr(model, "valid_length", None)
    return int(valid_length(length)) if callable(valid_length) else length
