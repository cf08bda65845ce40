"""Demucs stem separation split into a CPU coordinator and GPU workers.

The coordinator normalises the track, builds a :class:`SeparationPlan`, cuts
its windows and stitches the outputs with an :class:`OverlapAdd`; a worker only
calls :func:`run_batch`. Together they reproduce ``demucs.apply.apply_model``
(``pipelines.separation.runner.separate``, the in-process reference, does it whole).
Nothing here imports ``ray``.
"""

from __future__ import annotations

from pipelines.separation.batching import BatchKey, PassReport, WindowBatcher
from pipelines.separation.models import (
    MODEL_INIT_SEED,
    SOURCES,
    BatchOutput,
    Separator,
    WindowBatch,
    load_model,
    run_batch,
    timed_batch,
)
from pipelines.separation.normalise import (
    EPSILON,
    Normalisation,
    denormalise,
    normalise,
)
from pipelines.separation.overlap import OverlapAdd, center_trim, transition_weight
from pipelines.separation.plan import Pass, SeparationPlan, Window
from pipelines.separation.shifts import draw_shift_offsets

__all__ = [
    "EPSILON",
    "MODEL_INIT_SEED",
    "SOURCES",
    "BatchKey",
    "BatchOutput",
    "Normalisation",
    "OverlapAdd",
    "Pass",
    "PassReport",
    "SeparationPlan",
    "Separator",
    "Window",
    "WindowBatch",
    "WindowBatcher",
    "center_trim",
    "denormalise",
    "draw_shift_offsets",
    "load_model",
    "normalise",
    "run_batch",
    "timed_batch",
    "transition_weight",
]
