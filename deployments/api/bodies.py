"""Request bodies and the upload limit: the one place a body's size is checked.

`BodyLimitMiddleware` holds every body under ``/v1`` (and the earlier servers'
uploads) to `body_limit`: the upload limit plus room for multipart framing. Within
that room a multipart file part can still exceed the limit by a little, so the
routes that read one take it through `upload_part`, which checks the part itself.
"""

from __future__ import annotations

from starlette.datastructures import FormData, Headers, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.api.auth import has_body_limit
from deployments.api.errors import domain_response
from deployments.api.services import Services
from deployments.api.urls import route_path
from pipelines.errors import InvalidRequest, PayloadTooLarge

MULTIPART_SLACK = 64 * 1024
"""Room for multipart framing and form fields on top of the file itself."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def max_upload_bytes(services: Services) -> int:
    """The largest file a client may send or reserve (``limits.max_upload_mb``)."""
    return int(services.args.limits.max_upload_mb * 1024 * 1024)


def body_limit(services: Services) -> int:
    """The largest request body: an upload at the limit plus its multipart framing."""
    return max_upload_bytes(services) + MULTIPART_SLACK


def upload_part(form: FormData, field: str, services: Services) -> UploadFile:
    """The multipart part ``field``: present, not empty, within the upload limit."""
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise InvalidRequest(f"The multipart body needs a {field}= part.", details={"field": field})
    size = upload.size or 0
    limit = max_upload_bytes(services)
    if size > limit:
        raise PayloadTooLarge(
            f"The file is {size} bytes; the upload limit is {limit} bytes.",
            details={"limit_bytes": limit},
        )
    if size == 0:
        raise InvalidRequest("The uploaded file is empty.", details={"field": field})
    return upload


class BodyLimitMiddleware:
    """413 for a request body (``/v1``, seed uploads) over ``limit`` bytes, unread.

    A declared ``Content-Length`` over the limit is refused before the app runs. A
    body without one (chunked) is counted as the app reads it: the read that crosses
    the limit raises `PayloadTooLarge`, the endpoint stops there and the app answers
    413 as for any domain error, so the remainder is never received.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in BODY_METHODS
            or not has_body_limit(route_path(scope))
        ):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self._error()
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except PayloadTooLarge:
            if started:
                raise
            await self._too_large(scope, receive, send)

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body exceeds the upload limit of {self.limit} bytes.",
            details={"limit_bytes": self.limit},
        )

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        exc = self._error()
        await domain_response(route_path(scope), exc)(scope, receive, send)
