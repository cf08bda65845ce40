"""Loading Demucs models and running them on batches of windows.

A :class:`Separator` is whatever ``demucs.pretrained.get_model`` returned,
flattened to a list of sub-models with per-source weights, so a single model
and a bag of models go through the same chunk plan and overlap-add.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import yaml
from demucs.apply import BagOfModels
from demucs.pretrained import REMOTE_ROOT, get_model
from demucs.repo import ModelLoadingError

from pipelines.errors import ModelUnavailable, UnknownModel

__all__ = [
    "MODEL_INIT_SEED",
    "SOURCES",
    "BatchOutput",
    "Separator",
    "WindowBatch",
    "load_model",
    "run_batch",
    "timed_batch",
]

SOURCES = ["drums", "bass", "other", "vocals"]
"""The four stems of the standard Demucs models."""

MODEL_INIT_SEED = 0
"""Torch seed every model is built under, so randomly initialised models
(``demucs_unittest``) get the same weights in every process."""


@dataclass(eq=False)
class Separator:
    """A Demucs model or bag of models, normalised to a bag.

    ``models[i]`` contributes ``weights[i][k]`` to source ``k``; a plain model
    is a bag of one with all weights 1, which leaves its output unchanged.
    """

    name: str
    sources: list[str]
    samplerate: int
    audio_channels: int
    models: list[torch.nn.Module]
    weights: list[list[float]]

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.models):
            raise ValueError("Give one list of source weights per sub-model.")
        for row in self.weights:
            if len(row) != len(self.sources):
                raise ValueError("Give one weight per source for every sub-model.")
        for k, source in enumerate(self.sources):
            if sum(row[k] for row in self.weights) <= 0:
                raise ValueError(f"The weights of source {source!r} must sum to more than 0.")

    @classmethod
    def from_model(cls, name: str, model: torch.nn.Module) -> Separator:
        """Wrap a Demucs model or ``BagOfModels`` and put it in eval mode."""
        model.eval()
        # demucs models carry their metadata as plain, untyped attributes.
        meta: Any = model
        if isinstance(model, BagOfModels):
            models = list(model.models)
            weights = [[float(w) for w in row] for row in meta.weights]
        else:
            models = [model]
            weights = [[1.0] * len(meta.sources)]
        return cls(
            name=name,
            sources=list(meta.sources),
            samplerate=int(meta.samplerate),
            audio_channels=int(meta.audio_channels),
            models=models,
            weights=weights,
        )

    def info(self) -> dict[str, Any]:
        """What the API reports about this model."""
        return {
            "name": self.name,
            "sources": list(self.sources),
            "samplerate": self.samplerate,
            "audio_channels": self.audio_channels,
            "n_models": len(self.models),
        }

    def to(self, device: str | torch.device) -> Separator:
        """Move every sub-model to ``device`` (in place) and return self."""
        for model in self.models:
            model.to(device)
        return self

    def weights_digest(self) -> str:
        """SHA-256 of every parameter and buffer: equal digests, equal models.

        Replicas compare it to check they all serve the same weights.
        """
        digest = hashlib.sha256()
        for model in self.models:
            for key, tensor in model.state_dict().items():
                digest.update(key.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()


def _remote_names() -> set[str]:
    """Names demucs can fetch without a namespace: bag files and signatures."""
    names = {path.stem for path in REMOTE_ROOT.glob("*.yaml")}
    for line in (REMOTE_ROOT / "files.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.startswith("root:"):
            names.add(line.split("-", 1)[0])
    return names


def _check_resolvable(name: str, repo: Path | None) -> None:
    """Refuse early what ``get_model`` could only refuse after network retries."""
    if not name:
        raise UnknownModel("The model name is empty.")
    if repo is not None:
        if not repo.is_dir():
            raise UnknownModel(
                f"Model repository {str(repo)!r} does not exist or is not a directory.",
                details={"model": name, "repo": str(repo)},
            )
        return
    if name == "demucs_unittest" or name.startswith("hf://") or "/" in name:
        return
    if name not in _remote_names():
        raise UnknownModel(
            f"{name!r} is not a Demucs pretrained model or bag name.",
            details={"model": name},
        )


def load_model(name: str, repo: Path | None = None) -> Separator:
    """Load a Demucs model by pretrained name, from a local repo, or ``demucs_unittest``.

    ``repo`` is a directory in the ``demucs --repo`` layout (``<sig>.th`` files
    and bag ``<name>.yaml`` files). Models are built under a fixed torch seed
    inside ``fork_rng``, so the global RNG is untouched and randomly initialised
    models are identical in every process.

    Raises:
        UnknownModel: the name or the repo cannot be resolved.
        ModelUnavailable: the weights could not be fetched or loaded (no network,
            missing or corrupt files).
    """
    repo = Path(repo) if repo is not None else None
    _check_resolvable(name, repo)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(MODEL_INIT_SEED)
            model = get_model(name, repo)
    # demucs reports user errors through sys.exit (``fatal``); a replica must not exit.
    except (
        ModelLoadingError,
        OSError,
        KeyError,
        ValueError,
        yaml.YAMLError,
        SystemExit,
    ) as exc:
        where = f" from repository {str(repo)!r}" if repo is not None else ""
        raise ModelUnavailable(
            f"Demucs model {name!r} could not be loaded{where}: {exc}",
            details={
                "model": name,
                "reason": str(exc) or type(exc).__name__,
                "repo": str(repo) if repo is not None else None,
            },
        ) from exc
    return Separator.from_model(name, model)


@dataclass(frozen=True)
class WindowBatch:
    """What a coordinator sends a worker: one job's windows for one sub-model."""

    job_id: str
    """The job the windows belong to (windows of several jobs may share a forward pass)."""
    sub_model: int
    windows: npt.NDArray[np.float32]
    """Padded windows (B, channels, padded_length)."""


@dataclass(frozen=True)
class BatchOutput:
    """What a worker hands back for a batch of windows."""

    outputs: npt.NDArray[np.float32]
    """Model output (B, sources, channels, padded_length)."""
    forward_seconds: float
    """Time spent in the forward pass itself (not waiting for the device or in transit)."""


def run_batch(
    model: torch.nn.Module, batch: npt.NDArray[np.float32], device: str = "cpu"
) -> npt.NDArray[np.float32]:
    """Run ``model`` on a batch of padded windows: all a GPU worker does.

    ``batch`` has shape (B, channels, padded_length); the result has shape
    (B, sources, channels, padded_length), float32 on the CPU. The model must
    already live on ``device``.
    """
    # torch warns on read-only arrays (e.g. ones deserialised from the object store).
    array = np.ascontiguousarray(batch, dtype=np.float32)
    if not array.flags.writeable:
        array = array.copy()
    with torch.inference_mode():
        out = model(torch.from_numpy(array).to(device))
    result: npt.NDArray[np.float32] = out.to("cpu", torch.float32).numpy()
    return result


def timed_batch(
    model: torch.nn.Module, batch: npt.NDArray[np.float32], device: str = "cpu"
) -> BatchOutput:
    """:func:`run_batch`, with the time its forward pass took."""
    started = time.perf_counter()
    outputs = run_batch(model, batch, device)
    return BatchOutput(outputs, time.perf_counter() - started)
