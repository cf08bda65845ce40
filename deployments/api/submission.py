"""Reading a job request: multipart ``file=`` or JSON ``{"input": {upload_id | url}}``.

Whatever the form, the input ends up referenced from storage (or by URL) before the
job is accepted, so any worker replica can pick it up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from deployments.api import intake
from deployments.api.bodies import upload_part
from deployments.api.schemas import form_types
from deployments.api.services import Services
from pipelines.audio import AudioInfo
from pipelines.errors import InvalidRequest
from pipelines.fetch import check_url_form
from pipelines.jobs import SeparationParams
from pipelines.jobs.scratch import ScratchCost, ScratchSpace
from pipelines.jobs.transcription import TranscriptionParams
from pipelines.lyrics import LyricsParams
from pipelines.webhooks import CALLBACK_FIELD

FORM_TYPES = form_types(SeparationParams, LyricsParams, TranscriptionParams)
"""How each multipart text field is read: its JSON type in the job kinds' parameters."""
_CALLBACK = {"field": CALLBACK_FIELD}


@dataclass
class JobRequest:
    """A parsed request: its parameters, and where its input is (nothing stored yet).

    ``callback_url`` and ``cache`` are the job-level options of ``/v1`` requests; other
    callers (the earlier servers' routes) leave the cache off."""

    params: dict[str, Any]
    upload_id: str | None = None
    url: str | None = None
    upload: UploadFile | None = None
    form: FormData | None = None
    callback_url: str | None = None
    cache: bool = False

    def take_options(self) -> JobRequest:
        """Move ``callback_url`` and ``cache`` from the parameters into their fields."""
        url = self.params.pop(CALLBACK_FIELD, None)
        cache = self.params.pop("cache", True)
        if url is not None and not isinstance(url, str):
            raise InvalidRequest(f"{CALLBACK_FIELD} must be a URL.", details=_CALLBACK)
        if url is not None:
            check_url_form(url, CALLBACK_FIELD)  # its address is checked at acceptance
        if not isinstance(cache, bool):
            raise InvalidRequest("cache must be true or false.", details={"field": "cache"})
        self.callback_url, self.cache = url, cache
        return self

    async def close(self) -> None:
        """Release the body's spooled files (multipart parsing keeps them open)."""
        if self.form is not None:
            await self.form.close()

    async def store_input(
        self, services: Services, owner: str, cost: ScratchCost, *, digest: bool = False
    ) -> dict[str, Any]:
        """The input probed (415/413), checked to fit the scratch disk (507), and in storage,
        before the job is accepted; as the record keeps it (with ``digest``: its SHA-256)."""

        def admit(info: AudioInfo, size: int) -> None:
            scratch_space(services).check(cost.bytes_for(info.duration, size))

        if self.upload_id is not None:
            stored = await intake.stored_upload(
                services, self.upload_id, owner, admit, digest=digest
            )
        elif self.url is not None:
            stored = await intake.store_url(services, self.url, admit, digest=digest)
        else:
            assert self.upload is not None
            upload = self.upload
            stored = await intake.store_body(
                services, upload.file, upload.filename, upload.content_type, admit, digest=digest
            )
        return stored.to_dict()


def scratch_space(services: Services) -> ScratchSpace:
    """The coordinators' scratch disk as this replica sees it (the same path on every
    node: the check is exact where the ingress runs beside a coordinator)."""
    settings = services.settings
    return ScratchSpace(settings.scratch_dir, int(settings.scratch_reserve_mb * 1024 * 1024))


async def read_job_request(request: Request, services: Services) -> JobRequest:
    """Parameters and input from either request form (body uploads not yet stored)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _read_multipart(request, services)
    if content_type.startswith("application/json"):
        return await _read_json(request)
    raise InvalidRequest(
        "Send multipart/form-data with a file= part, or JSON with an input object.",
        details={"content_type": content_type},
    )


async def _read_multipart(request: Request, services: Services) -> JobRequest:
    form = await request.form()
    try:
        return _from_form(form, services)
    except BaseException:
        await form.close()
        raise


def _from_form(form: FormData, services: Services) -> JobRequest:
    upload = upload_part(form, "file", services)
    params = _form_params([(k, v) for k, v in form.multi_items() if k != "file"])
    return JobRequest(params, upload=upload, form=form).take_options()


def _form_params(items: list[tuple[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in items:
        if not isinstance(value, str):
            raise InvalidRequest(f"Field {name!r} must be text.", details={"field": name})
        params[name] = _coerce(name, value)
    return params


def _coerce(name: str, value: str) -> Any:
    kind = FORM_TYPES.get(name)
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        raise InvalidRequest(f"Field {name!r} must be a number.", details={"field": name}) from None
    if kind == "boolean":
        return value.lower() in ("1", "true", "yes", "on")
    if kind == "array":
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
    return JobRequest(body, upload_id=upload_id, url=url).take_options()
