"""``/v1/files/{key}``: the ``local`` backend's signed URLs, with HTTP Range support."""

from __future__ import annotations

import asyncio
import re
import tempfile
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from deployments.api import intake
from deployments.api.services import AppServices, Services
from deployments.api.urls import FILES_ROUTE
from pipelines.errors import InvalidSignature, NotFound, PayloadTooLarge
from pipelines.storage.signing import UrlSigner

router = APIRouter(prefix=FILES_ROUTE.rstrip("/"), tags=["files"])

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
Expiry = Annotated[str, Query()]
"""``exp`` of a signed URL: when it expires (Unix time)."""
Signature = Annotated[str, Query()]
"""``sig`` of a signed URL: the HMAC ``UrlSigner`` checks."""


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Inclusive (start, end) of a single ``bytes=`` range, or None for the whole object."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        return None  # ignore ranges we do not understand (RFC 9110 permits that)
    if not match[1]:
        start, end = max(0, size - int(match[2])), size - 1
    else:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable
    return start, end


def _signer(services: Services) -> UrlSigner:
    if services.signer is None:
        raise NotFound("File URLs are served by the storage service, not this API.")
    return services.signer


# One route per method: a shared GET/HEAD route gives both the same OpenAPI operationId.
@router.head("/{key:path}", response_model=None, operation_id="head_file")
@router.get("/{key:path}", response_model=None, operation_id="download_file")
async def download(
    key: str,
    request: Request,
    services: AppServices,
    exp: Expiry,
    sig: Signature,
    filename: str | None = Query(default=None),
) -> Response:
    _signer(services).verify("GET", key, exp, sig, filename=filename)
    info = await asyncio.to_thread(services.storage.stat, key)
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=60"}
    if filename:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(filename)}"
    try:
        span = parse_range(request.headers.get("range"), info.size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{info.size}"})
    start, end = span or (0, info.size - 1)
    headers["Content-Length"] = str(max(0, end - start + 1))
    status = 200
    if span:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    media = info.content_type or "application/octet-stream"
    if request.method == "HEAD" or info.size == 0:
        return Response(status_code=status, headers=headers, media_type=media)
    chunks = services.storage.stream(key, start, end)
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type=media)


@router.put("/{key:path}", status_code=200)
async def upload(
    key: str, request: Request, services: AppServices, exp: Expiry, sig: Signature
) -> dict[str, object]:
    """Receive the bytes of a presigned upload (``local`` backend only).

    Only an upload's input key is writable, with at most the bytes its reservation
    declared; everything else under ``uploads/`` belongs to the server.
    """
    _signer(services).verify("PUT", key, exp, sig)
    if not intake.is_upload_input_key(key):
        raise InvalidSignature("Uploads may only target an upload's input.")
    limit = await intake.declared_size(services, key) or 0  # never above the upload limit
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The upload exceeds the limit of {limit} bytes.")
            spool.write(chunk)
        spool.seek(0)
        content_type = request.headers.get("content-type")
        await asyncio.to_thread(services.storage.put, key, spool, content_type)  # type: ignore[arg-type]
    return {"key": key, "bytes": size}
