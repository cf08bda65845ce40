"""Reading a job request: multipart ``file=`` or JSON ``{"input": {upload_id | url}}``.

Whatever the form, the input ends up referenced from storage (or by URL) before the
job is accepted, so any worker replica can pick it up.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

from deployments.api import admission
from deployments.api.jobs import present
from deployments.api.services import Services
from pipelines import audio
from pipelines.errors import AudioTooLong, InvalidRequest, NotFound, PayloadTooLarge
from pipelines.fetch import check_url
from pipelines.jobs import JobRecord, new_job_id
from pipelines.jobs.scratch import ScratchCost, ScratchSpace

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
INT_FIELDS = {"bit_depth", "mp3_bitrate", "shifts", "seed"}
FLOAT_FIELDS = {"overlap", "temperature"}
BOOL_FIELDS = {"word_timestamps", "vad"}
LIST_FIELDS = {"stems"}


def safe_filename(name: str | None, default: str = "input") -> str:
    """A storage-safe base name: no directories, no odd characters, bounded length."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._")[:100]
    return cleaned or default


def upload_meta_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/upload.json"


def new_upload_id() -> str:
    return secrets.token_hex(12)


def max_upload_bytes(services: Services) -> int:
    return int(services.args.limits.max_upload_mb * 1024 * 1024)


@dataclass
class JobRequest:
    """A parsed request: its parameters, and its input (stored, or still in the body)."""

    params: dict[str, Any]
    source: dict[str, Any] | None = None
    upload: UploadFile | None = None
    form: FormData | None = None

    async def close(self) -> None:
        """Release the body's spooled files (multipart parsing keeps them open)."""
        if self.form is not None:
            await self.form.close()

    async def store_input(
        self, services: Services, max_seconds: float, cost: ScratchCost
    ) -> dict[str, Any]:
        """Probe a body upload (415/413 before acceptance), check that the scratch disk
        holds the job (507), and put it into storage.

        Inputs given by upload id or URL are checked when the job starts (their length
        is known only once fetched); the job then fails with the same error.
        """
        if self.source is not None:
            return self.source
        assert self.upload is not None
        file = self.upload.file
        info = await asyncio.to_thread(_probe, file, max_seconds)
        size = self.upload.size or 0
        await asyncio.to_thread(scratch_space(services).check, cost.bytes_for(info.duration, size))
        filename = safe_filename(self.upload.filename)
        key = f"uploads/{new_upload_id()}/{filename}"
        file.seek(0)
        await asyncio.to_thread(services.storage.put, key, file, self.upload.content_type)
        self.source = {"key": key, "filename": filename}
        return self.source


def _probe(file: BinaryIO, max_seconds: float) -> audio.AudioInfo:
    file.seek(0)
    info = audio.probe(file)
    if info.duration > max_seconds:
        raise AudioTooLong(
            f"The audio lasts {info.duration:.0f} s; the limit is {max_seconds:.0f} s.",
            details={"limit_seconds": max_seconds},
        )
    return info


def scratch_space(services: Services) -> ScratchSpace:
    """The coordinators' scratch disk as this replica sees it (the same path on every
    node: the check is exact where the ingress runs beside a coordinator)."""
    settings = services.settings
    return ScratchSpace(settings.scratch_dir, int(settings.scratch_reserve_mb * 1024 * 1024))


def job_request_body(params: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of a job route, which parses its body by hand.

    Multipart: a ``file`` part plus the parameters as text fields (lists comma-separated);
    JSON: an ``input`` object (``upload_id`` or ``url``) plus the parameters.
    """
    fields = params.model_json_schema()["properties"]
    form = {name: _form_field(name, schema) for name, schema in fields.items()}
    multipart = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary"}, **form},
    }
    source = {
        "type": "object",
        "properties": {"upload_id": {"type": "string"}, "url": {"type": "string"}},
    }
    body = {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {"input": source, **fields},
    }
    content = {"multipart/form-data": {"schema": multipart}, "application/json": {"schema": body}}
    return {"requestBody": {"required": True, "content": content}}


def _form_field(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter as a form field: never null; lists become comma-separated text."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    field = {**options[0], "description": schema.get("description", name)}
    if name in LIST_FIELDS:
        field = {"type": "string", "description": f"{field['description']} Comma-separated."}
    return field


async def read_job_request(request: Request, services: Services, owner: str) -> JobRequest:
    """Parameters and input from either request form (body uploads not yet stored)."""
    _check_declared_size(request, services)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(request, services)
    if content_type.startswith("application/json"):
        return await _read_json(request, services, owner)
    raise InvalidRequest(
        "Send multipart/form-data with a file= part, or JSON with an input object.",
        details={"content_type": content_type},
    )


def _check_declared_size(request: Request, services: Services) -> None:
    declared = request.headers.get("content-length")
    limit = max_upload_bytes(services)
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise PayloadTooLarge(
            f"The request is {int(declared)} bytes; the upload limit is {limit} bytes.",
            details={"limit_bytes": limit},
        )


async def _read_multipart(request: Request, services: Services) -> JobRequest:
    form = await request.form()
    try:
        return _from_form(form, services)
    except BaseException:
        await form.close()
        raise


def _from_form(form: FormData, services: Services) -> JobRequest:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("The multipart body needs a file= part.", details={"field": "file"})
    params = _form_params([(k, v) for k, v in form.multi_items() if k != "file"])
    size = upload.size if upload.size is not None else 0
    limit = max_upload_bytes(services)
    if size > limit:
        raise PayloadTooLarge(
            f"The file is {size} bytes; the upload limit is {limit} bytes.",
            details={"limit_bytes": limit},
        )
    if size == 0:
        raise InvalidRequest("The uploaded file is empty.", details={"field": "file"})
    return JobRequest(params, upload=upload, form=form)


def _form_params(items: list[tuple[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in items:
        if not isinstance(value, str):
            raise InvalidRequest(f"Field {name!r} must be text.", details={"field": name})
        params[name] = _coerce(name, value)
    return params


def _coerce(name: str, value: str) -> Any:
    try:
        if name in INT_FIELDS:
            return int(value)
        if name in FLOAT_FIELDS:
            return float(value)
    except ValueError:
        raise InvalidRequest(f"Field {name!r} must be a number.", details={"field": name}) from None
    if name in BOOL_FIELDS:
        return value.lower() in ("1", "true", "yes", "on")
    if name in LIST_FIELDS:
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


async def _read_json(request: Request, services: Services, owner: str) -> JobRequest:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        raise InvalidRequest(
            'JSON requests need an "input" object with upload_id or url.',
            details={"field": "input"},
        )
    source = body.pop("input")
    return JobRequest(body, source=await _resolve_input(source, services, owner))


async def _resolve_input(source: dict[str, Any], services: Services, owner: str) -> dict[str, Any]:
    if isinstance(source.get("upload_id"), str):
        return await _resolve_upload(source["upload_id"], services, owner)
    if isinstance(source.get("url"), str):
        allow = services.settings.allow_private_urls
        await asyncio.to_thread(check_url, source["url"], allow_private=allow)
        return {"url": source["url"], "filename": safe_filename(source["url"])}
    raise InvalidRequest("input needs upload_id or url.", details={"field": "input"})


async def _resolve_upload(upload_id: str, services: Services, owner: str) -> dict[str, Any]:
    if not re.fullmatch(r"[0-9a-f]{24}", upload_id):
        raise NotFound(f"No upload with id {upload_id!r}.")
    try:
        meta = json.loads(await asyncio.to_thread(services.storage.get, upload_meta_key(upload_id)))
    except NotFound:
        raise NotFound(f"No upload with id {upload_id!r}.") from None
    if meta["owner"] != owner:
        raise NotFound(f"No upload with id {upload_id!r}.")
    try:
        info = await asyncio.to_thread(services.storage.stat, meta["key"])
    except NotFound:
        raise InvalidRequest(
            f"Upload {upload_id} has no data yet: PUT the file to its put_url first.",
            details={"upload_id": upload_id},
        ) from None
    if info.size > max_upload_bytes(services):
        raise PayloadTooLarge(f"Upload {upload_id} is larger than the upload limit.")
    return {"key": meta["key"], "filename": meta["filename"]}


Validator = Callable[[JobRequest], Awaitable[tuple[dict[str, Any], dict[str, Any], ScratchCost]]]
"""Turns a request's raw parameters into (stored params, job info, scratch disk it
takes), raising 4xx errors."""


async def accept_job(
    request: Request,
    services: Services,
    owner: str,
    job_request: JobRequest,
    kind: str,
    validate: Validator,
) -> JSONResponse:
    """Validate, store the input, write the ``queued`` record, hand the job over: 202.

    With an ``Idempotency-Key`` that another request claimed first, its job instead.
    """
    try:
        params, info, cost = await validate(job_request)
        max_seconds = services.args.limits.max_audio_seconds
        source = await job_request.store_input(services, max_seconds, cost)
    finally:
        await job_request.close()
    record = JobRecord(
        job_id=new_job_id(), kind=kind, owner=owner, params=params, input=source, info=info
    )
    if (earlier := await admission.claim(request, services, record)) is not None:
        return earlier
    await asyncio.to_thread(services.jobs.save, record)
    await admission.accepted(services, record)
    await services.launcher.submit(kind, record.job_id)
    return JSONResponse(present(request, services, record), status_code=202)
