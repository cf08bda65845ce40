"""The separation server's REST routes: ``/api/info``, ``/api/upload``, ``/api/status``,
``/api/download``, ``/api/jobs`` (its ``/health`` is shared, in ``health.py``).

Each call becomes a ``/v1`` separation job of the caller's tenant; the answers keep
the old field names and states (docs/MIGRATING.md).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from deployments.api.bodies import upload_part
from deployments.api.compat.common import (
    OLD_STATUS,
    file_response,
    finished,
    form_text,
    load,
    message,
    percent,
    replayed,
    submit,
)
from deployments.api.services import AppServices, Owner
from deployments.api.submission import JobRequest
from pipelines.errors import InvalidRequest, NotFound
from pipelines.jobs import JobRecord

router = APIRouter(prefix="/api", tags=["compat: separation server"], include_in_schema=False)

OLD_STEMS = ("all", "vocals", "drums", "bass", "other")
OLD_FORMATS = ("mp3", "wav")


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def separation_params(model: str, stems: str, fmt: str) -> dict[str, Any]:
    """The old form fields as ``SeparationParams``: one stem means it and its complement."""
    if stems not in OLD_STEMS:
        raise InvalidRequest(
            f"stems must be one of {', '.join(OLD_STEMS)}.", details={"field": "stems"}
        )
    if fmt not in OLD_FORMATS:
        raise InvalidRequest(
            f"format must be one of {', '.join(OLD_FORMATS)}.", details={"field": "format"}
        )
    params: dict[str, Any] = {"model": model, "format": fmt}
    if stems != "all":
        params["two_stems"] = stems
    return params


def job_view(request: Request, record: JobRecord) -> dict[str, Any]:
    """A job as ``/api/status`` showed it."""
    params = record.params
    view: dict[str, Any] = {
        "job_id": record.job_id,
        "status": OLD_STATUS[record.status],
        "progress": percent(record),
        "message": message(record),
        "model": params.get("model"),
        "stems": params.get("two_stems") or "all",
        "format": params.get("format"),
        "filename": record.input.get("filename"),
        "created_at": iso(record.created_at),
        "completed_at": iso(record.finished_at),
    }
    if record.archive is not None:
        view["download_url"] = str(request.url_for("compat_download", job_id=record.job_id))
    if record.error:
        view["error"] = record.error.get("message")
    return view


@router.get("/info")
async def info(services: AppServices) -> dict[str, Any]:
    """What the server can do: models, stem choices, formats, limits."""
    models = await services.launcher.separation_models()
    limits = services.args.limits
    return {
        "name": "stemscribe",
        "models": sorted(models),
        "default_model": services.args.separation.default_model,
        "stems": list(OLD_STEMS),
        "formats": list(OLD_FORMATS),
        "max_file_size_mb": limits.max_upload_mb,
        "max_duration_seconds": limits.max_audio_seconds,
    }


@router.post("/upload")
async def upload(request: Request, services: AppServices, owner: Owner) -> dict[str, Any]:
    """Multipart ``audio_file`` plus ``model``, ``stems``, ``format``: a separation job."""
    job_id = await replayed(request, services, owner, "separation")
    if job_id is None:
        form = await request.form()
        try:
            audio = upload_part(form, "audio_file", services)
            params = separation_params(
                form_text(form, "model", services.args.separation.default_model),
                form_text(form, "stems", "all"),
                form_text(form, "format", "mp3"),
            )
        except BaseException:
            await form.close()
            raise
        job = JobRequest(params, upload=audio, form=form)
        job_id = await submit(request, services, owner, job, "separation")
    return {"job_id": job_id, "status": "queued", "message": "File uploaded; separation queued."}


@router.get("/status/{job_id}")
async def status(
    job_id: str,
    request: Request,
    services: AppServices,
    owner: Owner,
) -> dict[str, Any]:
    return job_view(request, await load(services, job_id, owner))


@router.get("/download/{job_id}", name="compat_download")
async def download(job_id: str, services: AppServices, owner: Owner) -> Response:
    """The ZIP of the stems."""
    record = finished(await load(services, job_id, owner))
    if record.archive is None:
        raise NotFound(f"Job {job_id} has no stems to download.")
    return await file_response(services, record.archive, f"{job_id}_stems.zip")


@router.get("/jobs")
async def jobs(
    request: Request,
    services: AppServices,
    owner: Owner,
    limit: int = Query(default=50, ge=1, le=100),
) -> dict[str, Any]:
    """The caller's most recent separation jobs, newest first."""

    def recent() -> list[JobRecord]:
        found: list[JobRecord] = []
        for record in services.jobs.list(owner):
            if record.kind == "separation":
                found.append(record)
            if len(found) >= limit:
                break
        return found

    records = await asyncio.to_thread(recent)
    return {"jobs": [job_view(request, r) for r in records], "count": len(records)}
