"""``POST /v1/separations``: accept a track, answer 202 with the job."""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from deployments.api.jobs import present
from deployments.api.services import Services, current_owner, get_services
from deployments.api.submission import JobRequest, read_job_request
from pipelines.jobs import JobRecord, SeparationParams, new_job_id

router = APIRouter(prefix="/v1", tags=["separations"])


@router.post("/separations", status_code=202)
async def create_separation(
    request: Request,
    services: Services = Depends(get_services),
    owner: str = Depends(current_owner),
) -> JSONResponse:
    """Multipart ``file=`` or JSON ``{"input": {...}}`` plus separation parameters."""
    job_request = await read_job_request(request, services, owner)
    try:
        return await _accept(request, services, owner, job_request)
    finally:
        await job_request.close()


async def _accept(
    request: Request, services: Services, owner: str, job_request: JobRequest
) -> JSONResponse:
    params = SeparationParams.model_validate(job_request.params)
    params.model = params.model or services.args.separation.default_model
    models = await services.launcher.separation_models()
    sources = {name: info["sources"] for name, info in models.items()}
    params.check_against(sources, services.args.separation.max_shifts)
    source = await job_request.store_input(services, services.args.limits.max_audio_seconds)
    seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
    record = JobRecord(
        job_id=new_job_id(),
        kind="separation",
        owner=owner,
        params=params.model_dump(),
        input=source,
        info={"seed": seed, "model": params.model},
    )
    await asyncio.to_thread(services.jobs.save, record)
    await services.launcher.submit("separation", record.job_id)
    return JSONResponse(present(request, services, record), status_code=202)
