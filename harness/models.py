"""Tiny random models: Demucs checkpoints with random weights, saved into a local repo
the way ``load_model`` reads them, so tests and benchmarks run without downloads."""

from __future__ import annotations

import copy
import hashlib
import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
import yaml
from demucs.htdemucs import HTDemucs

from pipelines.separation.models import SOURCES

__all__ = [
    "HTDEMUCS_KWARGS",
    "SHALLOW_HTDEMUCS",
    "TINY_HTDEMUCS",
    "save_bag",
    "save_random_htdemucs",
]

HTDEMUCS_KWARGS: dict[str, Any] = {
    "sources": SOURCES,
    "dconv_mode": 3,
    "bottom_channels": 512,
    "t_dropout": 0.02,
    "multi_freqs": [],
    "samplerate": 44100,
    "segment": Fraction(39, 5),
}
"""Constructor arguments of the released ``htdemucs`` checkpoint that differ
from ``HTDemucs`` defaults: a random model built with them costs the same
compute per window as the real one."""

TINY_HTDEMUCS: dict[str, Any] = {
    "channels": 8,
    "depth": 3,  # the transformer attends over ~length / 4**depth positions: keep it short
    "nfft": 2048,
    "t_layers": 1,
    "t_heads": 2,
    "bottom_channels": 0,
    "dconv_mode": 3,
    "samplerate": 44100,
    "segment": 2,
}
"""A complete but tiny HTDemucs: 2 s windows at 44.1 kHz, fast on a CPU."""

SHALLOW_HTDEMUCS: dict[str, Any] = {
    "channels": 8,
    "depth": 3,
    "t_layers": 0,
    "dconv_comp": 2,
    "bottom_channels": 0,
    "segment": Fraction(39, 5),
}
"""htdemucs' 7.8 s windows without the transformer, shallow: a few seconds a window on a
small CPU. For long tracks, whose memory and plumbing depend on the window, not the model."""


def _sig_of(path: Path) -> str:
    """The signature ``demucs.repo.LocalRepo`` gives a ``.th`` file."""
    return path.stem.rsplit("-", 1)[0] if "-" in path.stem else path.stem


def save_random_htdemucs(repo: Path, name: str, *, seed: int = 0, **htdemucs_kwargs: Any) -> Path:
    """Save a randomly initialised ``HTDemucs`` into a local model repo.

    ``htdemucs_kwargs`` override :data:`HTDEMUCS_KWARGS` (the released htdemucs
    architecture). The file is ``<name>-<sha256[:8]>.th``, the checksummed form
    demucs' ``LocalRepo`` verifies, so ``load_model(name, repo)`` loads it through
    demucs' own repo path. An earlier model saved under ``name`` is replaced.
    """
    repo.mkdir(parents=True, exist_ok=True)
    # Deep copy: the model keeps references to list arguments such as ``sources``.
    kwargs = copy.deepcopy({**HTDEMUCS_KWARGS, **htdemucs_kwargs})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HTDemucs(**kwargs)
    args, init_kwargs = model._init_args_kwargs
    package = {
        "klass": HTDemucs,
        "args": args,
        "kwargs": init_kwargs,
        "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(package, buffer)
    data = buffer.getvalue()
    for old in repo.glob("*.th"):
        if _sig_of(old) == name:
            old.unlink()
    path = repo / f"{name}-{hashlib.sha256(data).hexdigest()[:8]}.th"
    path.write_bytes(data)
    return path


def save_bag(
    repo: Path,
    name: str,
    models: list[str],
    *,
    weights: list[list[float]] | None = None,
    segment: float | None = None,
) -> Path:
    """Write a bag-of-models ``<name>.yaml`` listing model signatures in ``repo``."""
    bag: dict[str, Any] = {"models": list(models)}
    if weights is not None:
        bag["weights"] = [[float(w) for w in row] for row in weights]
    if segment is not None:
        bag["segment"] = segment
    path = repo / f"{name}.yaml"
    path.write_text(yaml.safe_dump(bag))
    return path
