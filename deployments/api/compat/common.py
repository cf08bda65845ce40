"""What both earlier servers' routes share: job states in their words, multipart files,
job submission through the ``/v1`` admission path, and file bodies from storage.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import FormData

from deployments.api.admission import Admission
from deployments.api.services import Services
from deployments.api.submission import JobRequest
from pipelines.errors import InvalidRequest, JobNotFinished
from pipelines.jobs import JobRecord, JobStatus, OutputFile

OLD_STATUS = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "processing",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "failed",
}
"""stemscribe's job states in the earlier servers' vocabulary (cancelled had no word)."""


def percent(record: JobRecord) -> int:
    """Progress 0-100; 100 only once the job succeeded (its outputs are all written)."""
    if record.status is JobStatus.SUCCEEDED:
        return 100
    return min(99, int(record.progress * 100))


def message(record: JobRecord) -> str:
    """A sentence for a person, as the old status calls carried."""
    if record.status is JobStatus.QUEUED:
        return "Waiting for a worker."
    if record.status is JobStatus.RUNNING:
        return f"Processing ({percent(record)}%)."
    if record.status is JobStatus.SUCCEEDED:
        return "Completed."
    if record.status is JobStatus.CANCELLED:
        return "Cancelled."
    error = record.error or {}
    return str(error.get("message") or "The job failed.")


def form_text(form: FormData, field: str, default: str) -> str:
    value = form.get(field, default)
    if not isinstance(value, str):
        raise InvalidRequest(f"Field {field!r} must be text.", details={"field": field})
    return value.strip() or default


async def replayed(request: Request, services: Services, owner: str, kind: str) -> str | None:
    """The job of a repeated ``Idempotency-Key``, else None once the tenant's cap allows one.

    Run before the body is read, as ``/v1`` does, so a refusal costs no upload.
    """
    replay = await Admission(request, services, owner).replay(kind)
    return None if replay is None else str(json.loads(bytes(replay.body))["job_id"])


async def submit(
    request: Request, services: Services, owner: str, job: JobRequest, kind: str
) -> str:
    """Accept ``job`` exactly as ``/v1`` does (validate, store, record, hand over); its id.

    ``job.params`` are the stemscribe parameters the old call translates to.
    """
    response = await Admission(request, services, owner).admit(job, kind)
    return str(json.loads(bytes(response.body))["job_id"])


async def load(services: Services, job_id: str, owner: str) -> JobRecord:
    return await asyncio.to_thread(services.jobs.get, job_id, owner)


def finished(record: JobRecord) -> JobRecord:
    """``record`` when it succeeded; else `JobNotFinished` (409) saying where it stands."""
    if record.status is not JobStatus.SUCCEEDED:
        raise JobNotFinished(
            f"Job {record.job_id} is {OLD_STATUS[record.status]}; results exist once it completed.",
            details={"status": OLD_STATUS[record.status], "progress": percent(record)},
        )
    return record


async def file_response(services: Services, output: OutputFile, filename: str) -> Response:
    """The object's bytes through the ingress, as the old servers sent them (``curl -O``)."""
    info = await asyncio.to_thread(services.storage.stat, output.key)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(info.size),
    }
    media = output.content_type or "application/octet-stream"
    if info.size == 0:
        return Response(b"", headers=headers, media_type=media)
    chunks = services.storage.stream(output.key, 0, info.size - 1)
    return StreamingResponse(chunks, headers=headers, media_type=media)
