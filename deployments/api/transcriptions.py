"""``POST /v1/transcriptions``: a transcription job (JSON + SRT/VTT/TXT files)."""

from __future__ import annotations

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
from pipelines.jobs.kinds import SPEECH_COST
from pipelines.jobs.scratch import ScratchCost
from pipelines.jobs.transcription import TranscriptionParams
from pipelines.transcription import check_language_for

router = APIRouter(prefix="/v1", tags=["transcriptions"])


def checked_transcription(services: Services, params: TranscriptionParams) -> TranscriptionParams:
    params.model = services.transcriber.resolve(params.model)
    options = params.options()  # language and task errors answer 400 now
    check_language_for(params.model, options.language)
    return params


@router.post(
    "/transcriptions", status_code=202, openapi_extra=job_request_body(TranscriptionParams)
)
async def create_transcription(
    request: Request,
    services: Services = Depends(get_services),
    owner: str = Depends(current_owner),
) -> JSONResponse:
    """Multipart ``file=`` or JSON ``{"input": {...}}`` plus transcription parameters."""

    async def validate(job: JobRequest) -> tuple[dict[str, Any], dict[str, Any], ScratchCost]:
        params = checked_transcription(services, TranscriptionParams.model_validate(job.params))
        await services.transcriber.check_available(str(params.model))
        return params.model_dump(), {"model": params.model}, SPEECH_COST

    if (replay := await admit(request, services, owner, "transcription")) is not None:
        return replay
    job_request = await read_job_request(request, services)
    return await accept_job(request, services, owner, job_request, "transcription", validate)
