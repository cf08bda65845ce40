"""A job request's parameters checked against the models this deployment serves.

`validate` is the one place each kind's parameters are parsed and checked (4xx
errors), for ``/v1`` and the earlier servers' routes alike.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from deployments.api.services import Services
from pipelines.errors import InvalidRequest
from pipelines.jobs import SeparationParams
from pipelines.jobs.kinds import SPEECH_COST, scratch_cost
from pipelines.jobs.scratch import ScratchCost
from pipelines.jobs.transcription import TranscriptionParams
from pipelines.lyrics import LyricsParams
from pipelines.transcription import check_language_for


@dataclass(frozen=True)
class Validated:
    """What a job's record starts from: its stored parameters, its info (model, seed),
    and the scratch disk it takes."""

    params: dict[str, Any]
    info: dict[str, Any]
    cost: ScratchCost


async def validate(services: Services, kind: str, raw: dict[str, Any]) -> Validated:
    """``raw`` parameters of a ``kind`` job, parsed and checked against the served models."""
    check = _KINDS.get(kind)
    if check is None:
        raise InvalidRequest(f"Unknown job kind {kind!r}.")
    return await check(services, raw)


async def _separation(services: Services, raw: dict[str, Any]) -> Validated:
    params, model = await _checked_separation(services, SeparationParams.model_validate(raw))
    seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
    info = {"seed": seed, "model": params.model}
    return Validated(params.model_dump(), info, _separation_cost(params, model))


async def _lyrics(services: Services, raw: dict[str, Any]) -> Validated:
    params = LyricsParams.model_validate(raw)
    separation, model = await _checked_separation(services, params.separation())
    params.separation_model = separation.model
    _checked_transcription(services, params.transcription())
    params.model = services.transcriber.resolve(params.model)
    info = {"seed": secrets.randbelow(2**31), "model": params.model}
    return Validated(params.model_dump(), info, _separation_cost(params, model))


async def _transcription(services: Services, raw: dict[str, Any]) -> Validated:
    params = _checked_transcription(services, TranscriptionParams.model_validate(raw))
    await services.transcriber.check_available(str(params.model))
    return Validated(params.model_dump(), {"model": params.model}, SPEECH_COST)


_KINDS: dict[str, Callable[[Services, dict[str, Any]], Awaitable[Validated]]] = {
    "separation": _separation,
    "lyrics": _lyrics,
    "transcription": _transcription,
}


async def _checked_separation(
    services: Services, params: SeparationParams
) -> tuple[SeparationParams, dict[str, Any]]:
    """The params with their model resolved and checked, and that model's info."""
    params.model = params.model or services.args.separation.default_model
    models = await services.launcher.separation_models(wait_for=params.model)
    sources = {name: info.get("sources", []) for name, info in models.items()}
    params.check_against(sources, services.args.separation.max_shifts)
    return params, models[params.model]


def _checked_transcription(services: Services, params: TranscriptionParams) -> TranscriptionParams:
    params.model = services.transcriber.resolve(params.model)
    options = params.options()  # language and task errors answer 400 now
    check_language_for(params.model, options.language)
    return params


def _separation_cost(params: SeparationParams | LyricsParams, model: dict[str, Any]) -> ScratchCost:
    rate, channels = int(model["samplerate"]), int(model["audio_channels"])
    return scratch_cost(params, rate, channels, len(model["sources"]))
