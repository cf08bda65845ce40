"""``POST /v1/separations`` and ``POST /v1/lyrics``: accept a track, answer 202 with the job."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from deployments.api.admission import Admission, job_admission
from deployments.api.schemas import job_request_body
from pipelines.jobs import SeparationParams
from pipelines.lyrics import LyricsParams

router = APIRouter(prefix="/v1", tags=["separations"])


@router.post("/separations", status_code=202, openapi_extra=job_request_body(SeparationParams))
async def create_separation(admission: Admission = Depends(job_admission)) -> JSONResponse:
    """Multipart ``file=`` or JSON ``{"input": {...}}`` plus separation parameters."""
    return await admission.accept("separation")


@router.post("/lyrics", status_code=202, openapi_extra=job_request_body(LyricsParams))
async def create_lyrics(admission: Admission = Depends(job_admission)) -> JSONResponse:
    """Vocals separated, then transcribed with word timings: stems plus LRC/SRT lyrics."""
    return await admission.accept("lyrics")
