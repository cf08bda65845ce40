"""Download models into the image at build time, with the loading code the replicas use.

Usage: ``python -m scripts.bake_models "htdemucs htdemucs_ft whisper:large-v3"``

Each argument may hold several whitespace-separated specs (the Dockerfile passes
its ``BAKE_MODELS`` build arg as one string). A spec is a Demucs model name, or
``whisper:<spec>`` for a faster-whisper model. Loading a model once fills the
caches the replicas read later (``TORCH_HOME`` for Demucs weights, ``HF_HOME``
for Whisper), so a pod built this way starts without reaching a model hub.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

WHISPER_PREFIX = "whisper:"

Loader = Callable[[str], Any]


@dataclass(frozen=True)
class ModelSpec:
    """One model to bake: which family, and the name its loader takes."""

    family: Literal["demucs", "whisper"]
    name: str


def parse_specs(args: Sequence[str]) -> list[ModelSpec]:
    """Split ``args`` into model specs, in order and without duplicates."""
    specs: list[ModelSpec] = []
    for token in (token for arg in args for token in arg.split()):
        if token.startswith(WHISPER_PREFIX):
            name = token[len(WHISPER_PREFIX) :]
            if not name:
                raise ValueError(f"{token!r}: name a faster-whisper model after 'whisper:'")
            spec = ModelSpec("whisper", name)
        else:
            spec = ModelSpec("demucs", token)
        if spec not in specs:
            specs.append(spec)
    return specs


def _load_demucs(name: str) -> Any:
    from pipelines.separation import load_model

    return load_model(name)


def _load_whisper(spec: str) -> Any:
    from pipelines.transcription.models import load_whisper

    # The build machine has no GPU; the weights cached are the same either way.
    return load_whisper(spec, device="cpu")


def bake(
    specs: Sequence[ModelSpec],
    *,
    load_demucs: Loader = _load_demucs,
    load_whisper: Loader = _load_whisper,
) -> None:
    """Load every model once (and drop it) so its weights land in the caches."""
    loaders = {"demucs": load_demucs, "whisper": load_whisper}
    for spec in specs:
        print(f"baking {spec.family} model {spec.name!r}", flush=True)
        model = loaders[spec.family](spec.name)
        del model


def main(argv: Sequence[str] | None = None) -> int:
    specs = parse_specs(sys.argv[1:] if argv is None else argv)
    if not specs:
        print("no models to bake (BAKE_MODELS is empty): models load on first use")
        return 0
    bake(specs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
