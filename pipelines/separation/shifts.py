"""Offsets for the shift trick, drawn as ``apply_model`` draws them.

apply_model draws each offset with ``random.randint(0, max_shift)`` from the
global ``random`` module: sub-model 0's shifts first, each shift's windows run
before the next draw. HTDemucs' forward also draws from ``random`` once per
call (``random.randrange(1)`` for its sinusoidal position embedding: always 0,
yet it advances the generator), so the offsets after the first depend on how
many windows ran in between. Replaying those draws on ``random.Random(seed)``
reproduces ``random.seed(seed); apply_model(...)`` exactly.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from pipelines.separation.geometry import max_shift_of, segment_length_of, stride_of

if TYPE_CHECKING:
    from pipelines.separation.models import Separator

__all__ = ["draw_shift_offsets"]


def _replay_forward_draws(model: Any, rng: random.Random) -> None:
    """Advance ``rng`` as one forward call of ``model`` advances ``random``."""
    transformer = getattr(model, "crosstransformer", None)
    if transformer is not None and getattr(transformer, "emb", None) == "sin":
        rng.randrange(transformer.sin_random_shift + 1)


def draw_shift_offsets(
    separator: Separator,
    shifts: int,
    seed: int,
    *,
    length: int | None = None,
    overlap: float = 0.25,
) -> list[list[int]]:
    """Per sub-model, per shift, an offset in ``[0, max_shift]`` from ``seed``.

    With the track ``length`` and ``overlap`` the draws between offsets are
    replayed too, so the offsets equal those of
    ``random.seed(seed); apply_model(model, mix, shifts=shifts, overlap=overlap)``.
    Without them the offsets are plain consecutive draws: as good for the
    shift trick and still reproducible, equal to apply_model's only for models
    that draw nothing themselves (HDemucs, Demucs).
    """
    if shifts < 0:
        raise ValueError(f"shifts must be >= 0, got {shifts}.")
    rng = random.Random(seed)
    max_shift = max_shift_of(separator.samplerate)
    offsets: list[list[int]] = []
    for model in separator.models:
        row: list[int] = []
        for _ in range(shifts):
            offset = rng.randint(0, max_shift)
            row.append(offset)
            if length is not None:
                pass_length = length + max_shift - offset
                stride = stride_of(segment_length_of(model), overlap)
                for _ in range(0, pass_length, stride):
                    _replay_forward_draws(model, rng)
        offsets.append(row)
    return offsets
