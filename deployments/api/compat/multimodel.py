"""The multi-model backend's REST routes: upload a file once, then run models on it.

``POST /upload`` stores the file as a ``/v1`` upload (its ``file_id`` is the
``upload_id``); ``POST /process/{model}/{file_id}`` starts a ``/v1`` job on it and
notes the job id beside the upload (``uploads/{file_id}/jobs/{model}.json``), which
is how ``/status``, ``/files``, ``/download`` and ``/cleanup`` find their jobs.
Model families: ``demucs`` (separation), ``whisper`` (transcription); ``musicgen``
answers 501 ``model_not_available``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from deployments.api import intake
from deployments.api.bodies import upload_part
from deployments.api.compat.common import file_response, finished, replayed, submit
from deployments.api.compat.file_jobs import (
    KINDS,
    downloads,
    file_jobs,
    job_key,
    model_status,
    upload_meta,
)
from deployments.api.services import AppServices, Owner, Services
from deployments.api.submission import JobRequest
from pipelines.errors import InvalidRequest, ModelNotAvailable, NotFound, UnknownModel

router = APIRouter(tags=["compat: multi-model backend"], include_in_schema=False)

UNAVAILABLE = ("musicgen",)


async def variant_of(request: Request) -> str | None:
    """``model_variant`` (or ``model``) from an optional JSON body."""
    body = await request.body()
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError:
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest('Send a JSON object such as {"model_variant": "htdemucs"}.')
    variant = data.get("model_variant", data.get("model"))
    if variant is not None and not isinstance(variant, str):
        raise InvalidRequest("model_variant must be text.", details={"field": "model_variant"})
    return variant or None


@router.get("/models")
async def models(services: AppServices) -> dict[str, Any]:
    """The model families, their variants, and which are available."""
    separation = await services.launcher.separation_models()
    transcription = services.args.transcription
    return {
        "models": {
            "demucs": {
                "available": True,
                "description": "Stem separation (Demucs).",
                "variants": sorted(separation),
                "default_variant": services.args.separation.default_model,
            },
            "whisper": {
                "available": True,
                "description": "Transcription (faster-whisper).",
                "variants": sorted(transcription.models),
                "default_variant": transcription.default_model,
            },
            "musicgen": {
                "available": False,
                "description": "Music generation is not available on this service.",
                "variants": [],
            },
        }
    }


@router.post("/upload")
async def upload(request: Request, services: AppServices, owner: Owner) -> dict[str, Any]:
    """Multipart ``file``: any audio FFmpeg decodes (mp3, wav, flac, m4a, ogg...)."""
    form = await request.form()
    try:
        audio = upload_part(form, "file", services)
        stored = await intake.store_body(
            services, audio.file, audio.filename, audio.content_type, intake.admit_any
        )
    finally:
        await form.close()
    file_id = stored.upload_id
    reservation = intake.UploadReservation(
        owner=owner, filename=stored.filename, bytes=audio.size or 0
    )
    await intake.record_reservation(services, file_id, reservation)
    return {
        "file_id": file_id,
        "filename": stored.filename,
        "size": audio.size,
        "message": "File uploaded.",
    }


async def start(
    request: Request, services: Services, owner: str, model: str, file_id: str
) -> dict[str, Any]:
    """Run the model family ``model`` on the uploaded file: a ``/v1`` job."""
    if model in UNAVAILABLE:
        raise ModelNotAvailable(
            f"The {model} model is not available on this service.",
            details={"available": sorted(KINDS)},
        )
    if model not in KINDS:
        raise UnknownModel(
            f"Unknown model {model!r}; available: {', '.join(sorted(KINDS))}.",
            details={"available": sorted(KINDS)},
        )
    await upload_meta(services, file_id, owner)
    variant = await variant_of(request)
    kind = KINDS[model]
    job_id = await replayed(request, services, owner, kind)
    if job_id is None:
        params: dict[str, Any] = {"model": variant}
        job = JobRequest(params, upload_id=file_id)
        job_id = await submit(request, services, owner, job, kind)
    entry = json.dumps({"job_id": job_id, "model_variant": variant}).encode()
    await asyncio.to_thread(
        services.storage.put, job_key(file_id, model), entry, "application/json"
    )
    return {
        "file_id": file_id,
        "model": model,
        "model_variant": variant,
        "job_id": job_id,
        "status": "processing",
        "message": f"{model} started.",
    }


@router.post("/process/{model}/{file_id}")
async def process(
    model: str,
    file_id: str,
    request: Request,
    services: AppServices,
    owner: Owner,
) -> dict[str, Any]:
    """JSON ``{"model_variant": ...}`` (optional) for ``demucs`` or ``whisper``."""
    return await start(request, services, owner, model, file_id)


@router.post("/separate/{file_id}")
async def separate(
    file_id: str,
    request: Request,
    services: AppServices,
    owner: Owner,
) -> dict[str, Any]:
    """The older form of ``/process/demucs/{file_id}``."""
    return await start(request, services, owner, "demucs", file_id)


@router.get("/status/{file_id}")
async def status(file_id: str, services: AppServices, owner: Owner) -> dict[str, Any]:
    """The file's jobs; the top-level fields are those of the latest one."""
    meta = await upload_meta(services, file_id, owner)
    jobs = await file_jobs(services, file_id, owner)
    view: dict[str, Any] = {"file_id": file_id, "filename": meta.filename}
    view |= {"status": "uploaded", "progress": 0, "message": "Uploaded; nothing run yet."}
    if jobs:
        latest = max(jobs.values(), key=lambda r: r.created_at)
        view |= {k: v for k, v in model_status(latest).items() if k != "job_id"}
    view["models"] = {model: model_status(record) for model, record in jobs.items()}
    return view


@router.get("/download/{file_id}/{track}", name="compat_track")
async def download(file_id: str, track: str, services: AppServices, owner: Owner) -> Response:
    """A stem by name (``vocals``...), ``stems.zip``, or ``transcription`` (plain text)."""
    await upload_meta(services, file_id, owner)
    jobs = await file_jobs(services, file_id, owner)
    if track == "transcription" and "whisper" in jobs:
        finished(jobs["whisper"])
    elif track != "transcription" and "demucs" in jobs:
        finished(jobs["demucs"])
    tracks = downloads(jobs)
    if track not in tracks:
        raise NotFound(
            f"No track {track!r} for file {file_id}.", details={"available": sorted(tracks)}
        )
    output = tracks[track]
    return await file_response(services, output, output.filename)


@router.get("/files/{file_id}")
async def files(
    file_id: str,
    request: Request,
    services: AppServices,
    owner: Owner,
) -> dict[str, Any]:
    """What can be downloaded for the file now."""
    meta = await upload_meta(services, file_id, owner)
    tracks = downloads(await file_jobs(services, file_id, owner))
    listed = [
        {
            "track": track,
            "filename": output.filename,
            "size": output.bytes,
            "content_type": output.content_type,
            "download_url": str(request.url_for("compat_track", file_id=file_id, track=track)),
        }
        for track, output in tracks.items()
    ]
    return {"file_id": file_id, "filename": meta.filename, "files": listed}


@router.delete("/cleanup/{file_id}")
async def cleanup(file_id: str, services: AppServices, owner: Owner) -> dict[str, Any]:
    """Delete the upload and the outputs of its jobs; cancel any still running."""
    await upload_meta(services, file_id, owner)
    deleted, cancelled = [], []
    for record in (await file_jobs(services, file_id, owner)).values():
        if record.status.finished:
            await asyncio.to_thread(services.jobs.delete, record.job_id)
            deleted.append(record.job_id)
        else:
            await asyncio.to_thread(services.jobs.request_cancel, record.job_id)
            cancelled.append(record.job_id)
    await asyncio.to_thread(services.storage.delete_prefix, f"uploads/{file_id}/")
    return {
        "file_id": file_id,
        "message": "Cleaned up.",
        "deleted_jobs": deleted,
        "cancelled_jobs": cancelled,
    }
