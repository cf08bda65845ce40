"""The files of the multi-model backend: an upload, and the jobs run on it.

``uploads/{file_id}/upload.json`` is the ``/v1`` upload record (owner, key, name);
``uploads/{file_id}/jobs/{model}.json`` names the job each model family ran on it,
so deleting the upload's folder forgets them together.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from deployments.api import intake
from deployments.api.compat.common import OLD_STATUS, load, message, percent
from deployments.api.services import Services
from pipelines.errors import NotFound
from pipelines.jobs import JobRecord, JobStatus, OutputFile

KINDS = {"demucs": "separation", "whisper": "transcription"}
"""Model families and the job kind each runs."""
TRANSCRIPT_FORMATS = ("txt", "json", "srt", "vtt")


def job_key(file_id: str, model: str) -> str:
    return f"uploads/{file_id}/jobs/{model}.json"


async def _read_json(services: Services, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.to_thread(services.storage.get, key))
    return data


async def upload_meta(services: Services, file_id: str, owner: str) -> intake.UploadReservation:
    """The stored upload of ``file_id``; 404 when missing or another tenant's."""
    try:
        return await intake.find_reservation(services, file_id, owner)
    except NotFound:
        raise NotFound(f"No file with id {file_id!r}.") from None


async def file_jobs(services: Services, file_id: str, owner: str) -> dict[str, JobRecord]:
    """The jobs run on ``file_id``, by model family (a deleted job is left out)."""
    found: dict[str, JobRecord] = {}
    for model in KINDS:
        try:
            entry = await _read_json(services, job_key(file_id, model))
            found[model] = await load(services, entry["job_id"], owner)
        except NotFound:
            continue
    return found


def model_status(record: JobRecord) -> dict[str, Any]:
    view = {
        "job_id": record.job_id,
        "status": OLD_STATUS[record.status],
        "progress": percent(record),
        "message": message(record),
        "model_variant": record.info.get("model"),
    }
    if record.error:
        view["error"] = record.error.get("message")
    return view


def downloads(jobs: dict[str, JobRecord]) -> dict[str, OutputFile]:
    """Every downloadable track of the file's succeeded jobs, by track name."""
    tracks: dict[str, OutputFile] = {}
    separation = jobs.get("demucs")
    if separation is not None and separation.status is JobStatus.SUCCEEDED:
        tracks |= {o.name: o for o in separation.outputs}
        if separation.archive is not None:
            tracks["stems.zip"] = separation.archive
    transcript = jobs.get("whisper")
    if transcript is not None and transcript.status is JobStatus.SUCCEEDED:
        by_name = {o.name: o for o in transcript.outputs}
        if "txt" in by_name:
            tracks["transcription"] = by_name["txt"]
        tracks |= {f"transcription.{n}": by_name[n] for n in TRANSCRIPT_FORMATS if n in by_name}
    return tracks
