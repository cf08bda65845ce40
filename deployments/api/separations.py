"""``POST /v1/separations`` and ``POST /v1/lyrics``: accept a track, answer 202 with the job."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from deployments.api.admission import admit
from deployments.api.services import Services, current_owner, get_services
from deployments.api.submission import (
    JobRequest,
    accept_job,
    job_request_body,
    read_job_request,
)
from deployments.api.transcriptions import checked_transcription
from pipelines.jobs import SeparationParams
from pipelines.jobs.kinds import scratch_cost
from pipelines.jobs.scratch import ScratchCost
from pipelines.lyrics import LyricsParams

router = APIRouter(prefix="/v1", tags=["separations"])


async def checked_separation(
    services: Services, params: SeparationParams
) -> tuple[SeparationParams, dict[str, Any]]:
    """The params with their model resolved and checked, and that model's info."""
    params.model = params.model or services.args.separation.default_model
    models = await services.launcher.separation_models(wait_for=params.model)
    sources = {name: info.get("sources", []) for name, info in models.items()}
    params.check_against(sources, services.args.separation.max_shifts)
    return params, models[params.model]


def separation_cost(params: SeparationParams | LyricsParams, model: dict[str, Any]) -> ScratchCost:
    rate, channels = int(model["samplerate"]), int(model["audio_channels"])
    return scratch_cost(params, rate, channels, len(model["sources"]))


@router.post("/separations", status_code=202, openapi_extra=job_request_body(SeparationParams))
async def create_separation(
    request: Request,
    services: Services = Depends(get_services),
    owner: str = Depends(current_owner),
) -> JSONResponse:
    """Multipart ``file=`` or JSON ``{"input": {...}}`` plus separation parameters."""

    async def validate(job: JobRequest) -> tuple[dict[str, Any], dict[str, Any], ScratchCost]:
        params, model = await checked_separation(
            services, SeparationParams.model_validate(job.params)
        )
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
        return (
            params.model_dump(),
            {"seed": seed, "model": params.model},
            separation_cost(params, model),
        )

    if (replay := await admit(request, services, owner, "separation")) is not None:
        return replay
    job_request = await read_job_request(request, services)
    return await accept_job(request, services, owner, job_request, "separation", validate)


@router.post("/lyrics", status_code=202, openapi_extra=job_request_body(LyricsParams))
async def create_lyrics(
    request: Request,
    services: Services = Depends(get_services),
    owner: str = Depends(current_owner),
) -> JSONResponse:
    """Vocals separated, then transcribed with word timings: stems plus LRC/SRT lyrics."""

    async def validate(job: JobRequest) -> tuple[dict[str, Any], dict[str, Any], ScratchCost]:
        params = LyricsParams.model_validate(job.params)
        separation, model = await checked_separation(services, params.separation())
        params.separation_model = separation.model
        checked_transcription(services, params.transcription())
        params.model = services.transcriber.resolve(params.model)
        info = {"seed": secrets.randbelow(2**31), "model": params.model}
        return params.model_dump(), info, separation_cost(params, model)

    if (replay := await admit(request, services, owner, "lyrics")) is not None:
        return replay
    job_request = await read_job_request(request, services)
    return await accept_job(request, services, owner, job_request, "lyrics", validate)
