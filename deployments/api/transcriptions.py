"""``POST /v1/transcriptions``: a transcription job (JSON + SRT/VTT/TXT files)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from deployments.api.admission import Admission, job_admission
from deployments.api.schemas import job_request_body
from pipelines.jobs.transcription import TranscriptionParams

router = APIRouter(prefix="/v1", tags=["transcriptions"])


@router.post(
    "/transcriptions", status_code=202, openapi_extra=job_request_body(TranscriptionParams)
)
async def create_transcription(admission: Admission = Depends(job_admission)) -> JSONResponse:
    """Multipart ``file=`` or JSON ``{"input": {...}}`` plus transcription parameters."""
    return await admission.accept("transcription")
