"""In-process, whole-track separation: the reference for tests and benchmarks.

It runs the same plan and windows as the service, with every window computed here
and the whole-track :class:`OverlapAdd`; jobs stream instead
(``pipelines.jobs.separation``), and must equal this to float32 rounding.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pipelines.separation.models import Separator, run_batch
from pipelines.separation.normalise import denormalise, normalise
from pipelines.separation.plan import SeparationPlan
from pipelines.separation.shifts import draw_shift_offsets

__all__ = ["separate"]


def separate(
    separator: Separator,
    wav: npt.NDArray[np.float32],
    *,
    overlap: float = 0.25,
    shifts: int = 0,
    seed: int = 0,
    batch_size: int = 1,
    device: str = "cpu",
) -> npt.NDArray[np.float32]:
    """Separate a (channels, samples) track into (sources, channels, samples) stems.

    Matches demucs' ``Separator.separate_tensor`` (``split=True``) run after
    ``random.seed(seed)``, to float32 rounding. The sub-models are moved to
    ``device``.
    """
    if wav.ndim != 2 or wav.shape[0] != separator.audio_channels:
        raise ValueError(
            f"Expected a ({separator.audio_channels}, samples) track, got shape {wav.shape}."
        )
    normalised, norm = normalise(wav)
    offsets = draw_shift_offsets(separator, shifts, seed, length=wav.shape[-1], overlap=overlap)
    plan = SeparationPlan.build(separator, wav.shape[-1], overlap=overlap, shift_offsets=offsets)
    separator.to(device)
    overlap_add = plan.accumulator()
    for windows in plan.batches(batch_size):
        batch = plan.extract_batch(normalised, windows)
        outputs = run_batch(separator.models[windows[0].sub_model], batch, device)
        for window, output in zip(windows, outputs, strict=True):
            overlap_add.add(window, output)
    return denormalise(overlap_add.result(), norm)
