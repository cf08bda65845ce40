"""``/v1/jobs``: status, live events (SSE), listing, cancellation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from deployments.api.services import AppServices, Owner, Services
from deployments.api.views import present
from pipelines.jobs import JobRecord
from pipelines.jobs.cache import ResultCache

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


async def load(services: Services, job_id: str, owner: str) -> JobRecord:
    return await asyncio.to_thread(services.jobs.get, job_id, owner)


@router.get("/{job_id}", name="get_job")
async def get_job(
    job_id: str,
    request: Request,
    services: AppServices,
    owner: Owner,
) -> dict[str, Any]:
    return present(request, services, await load(services, job_id, owner))


@router.get("/{job_id}/events")
async def job_events(
    job_id: str,
    request: Request,
    services: AppServices,
    owner: Owner,
) -> StreamingResponse:
    """Server-Sent Events: ``status`` and ``progress`` as they change, then ``result``."""
    record = await load(services, job_id, owner)
    stream = _events(request, services, record, owner)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def _events(
    request: Request, services: Services, record: JobRecord, owner: str
) -> AsyncIterator[str]:
    status, progress, quiet = None, -1.0, 0.0
    while True:
        if record.status != status:
            status = record.status
            yield _sse("status", {"job_id": record.job_id, "status": status.value})
        if record.progress != progress:
            progress = record.progress
            yield _sse("progress", {"job_id": record.job_id, "progress": round(progress, 4)})
        if record.status.finished:
            yield _sse("result", present(request, services, record))
            return
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keepalive\n\n"
        record = await load(services, record.job_id, owner)


@router.get("")
async def list_jobs(
    request: Request,
    services: AppServices,
    owner: Owner,
    limit: int = Query(default=20, ge=1, le=100),
    cursor: str | None = Query(default=None, description="next_cursor of the previous page"),
) -> dict[str, Any]:
    """The caller's jobs, newest first, a page at a time."""

    def page() -> list[JobRecord]:
        found: list[JobRecord] = []
        for record in services.jobs.list(owner):
            if cursor is not None and record.job_id >= cursor:
                continue
            found.append(record)
            if len(found) > limit:
                break
        return found

    records = await asyncio.to_thread(page)
    more = len(records) > limit
    records = records[:limit]
    return {
        "jobs": [present(request, services, r) for r in records],
        "next_cursor": records[-1].job_id if more else None,
    }


@router.delete("/{job_id}", response_model=None)
async def delete_job(
    job_id: str,
    request: Request,
    services: AppServices,
    owner: Owner,
) -> JSONResponse | Response:
    """Cancel a queued or running job (202), or delete a finished one and its outputs (204)."""
    record = await load(services, job_id, owner)
    if record.status.finished:
        cache = ResultCache(services.jobs, services.args.jobs.retention_seconds)
        await asyncio.to_thread(cache.forget, record)  # no new repeat may list these files
        await asyncio.to_thread(services.jobs.delete, job_id)
        return Response(status_code=204)
    await asyncio.to_thread(services.jobs.request_cancel, job_id)
    body = present(request, services, record) | {"cancel_requested": True}
    return JSONResponse(body, status_code=202)
