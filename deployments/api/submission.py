"""Reading a job request: multipart ``file=`` or JSON ``{"input": {upload_id | url}}``.

Whatever the form, the input ends up referenced from storage (or by URL) before the
job is accepted, so any worker replica can pick it up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile

from deployments.api import admission, intake
from deployments.api.intake import max_upload_bytes
from deployments.api.jobs import present
from deployments.api.services import Services
from pipelines.audio import AudioInfo
from pipelines.errors import InvalidRequest, PayloadTooLarge
from pipelines.fetch import check_url_form
from pipelines.jobs import JobRecord, new_job_id
from pipelines.jobs.scratch import ScratchCost, ScratchSpace

INT_FIELDS = {"bit_depth", "mp3_bitrate", "shifts", "seed"}
FLOAT_FIELDS = {"overlap", "temperature"}
BOOL_FIELDS = {"word_timestamps", "vad"}
LIST_FIELDS = {"stems"}


@dataclass
class JobRequest:
    """A parsed request: its parameters, and where its input is (nothing stored yet)."""

    params: dict[str, Any]
    upload_id: str | None = None
    url: str | None = None
    upload: UploadFile | None = None
    form: FormData | None = None

    async def close(self) -> None:
        """Release the body's spooled files (multipart parsing keeps them open)."""
        if self.form is not None:
            await self.form.close()

    async def store_input(
        self, services: Services, owner: str, cost: ScratchCost
    ) -> dict[str, Any]:
        """The input probed (415/413), checked to fit the scratch disk (507), and in storage,
        before the job is accepted; as the record keeps it."""

        def admit(info: AudioInfo, size: int) -> None:
            scratch_space(services).check(cost.bytes_for(info.duration, size))

        if self.upload_id is not None:
            stored = await intake.stored_upload(services, self.upload_id, owner, admit)
        elif self.url is not None:
            stored = await intake.store_url(services, self.url, admit)
        else:
            assert self.upload is not None
            upload = self.upload
            stored = await intake.store_body(
                services, upload.file, upload.filename, upload.content_type, admit
            )
        return stored.to_dict()


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


async def read_job_request(request: Request, services: Services) -> JobRequest:
    """Parameters and input from either request form (body uploads not yet stored)."""
    _check_declared_size(request, services)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(request, services)
    if content_type.startswith("application/json"):
        return await _read_json(request)
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


async def _read_json(request: Request) -> JobRequest:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The JSON body must be an object.", details={"field": "input"})
    upload_id, url = intake.source_of(body)
    del body["input"]
    if url is not None:
        check_url_form(url)  # its address is checked when it is fetched, at acceptance
    return JobRequest(body, upload_id=upload_id, url=url)


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
        source = await job_request.store_input(services, owner, cost)
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
