"""The one place domain errors become HTTP: status codes and the JSON error shape.

Every error leaves as ``{"error": {"code", "message", "details"}}``, except on the
OpenAI-compatible routes (``/v1/audio/``), which answer in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}``; never a trace.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from deployments.api.urls import route_path
from deployments.overload import SERVE_OVERLOAD, as_overloaded
from pipelines import errors
from pipelines.openai_format import openai_error

log = logging.getLogger(__name__)

OPENAI_PREFIX = "/v1/audio/"


class Unauthorized(errors.StemscribeError):
    """No API key, or one the service does not know."""

    code = "unauthorized"


class RateLimited(errors.StemscribeError):
    """The caller sent more requests than its rate allows; retry after a while."""

    code = "rate_limited"


class TooManyJobs(RateLimited):
    """The caller already has as many unfinished jobs as it may; retry when one ends."""

    code = "too_many_jobs"


STATUS: dict[type[errors.StemscribeError], int] = {
    errors.InvalidRequest: 400,
    Unauthorized: 401,
    errors.NotFound: 404,
    errors.IdempotencyConflict: 409,
    errors.JobNotFinished: 409,
    errors.PayloadTooLarge: 413,
    errors.AudioTooLong: 413,
    errors.UnsupportedAudio: 415,
    errors.InvalidSignature: 403,
    RateLimited: 429,
    errors.Overloaded: 503,
    errors.ModelUnavailable: 503,
    errors.ModelLoading: 503,
    errors.StorageUnavailable: 503,
    errors.ModelNotAvailable: 501,
    errors.InsufficientScratch: 507,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    501: "not_implemented",
    503: "unavailable",
}


def status_of(exc: errors.StemscribeError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    """The JSON error; ``details.retry_after_seconds`` (else 5 s on 429/503) → ``Retry-After``."""
    headers = _retry_after(status, details)
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def _retry_after(status: int, details: dict[str, Any] | None) -> dict[str, str] | None:
    retry_after = (details or {}).get("retry_after_seconds")
    if retry_after is None and status in (429, 503):
        retry_after = 5
    return {"Retry-After": str(retry_after)} if retry_after is not None else None


def openai_response(exc: errors.StemscribeError) -> JSONResponse:
    """``exc`` in OpenAI's error shape, with the status its client expects."""
    # OpenAI answers an unreadable file with 400, and its client expects that.
    status = 400 if isinstance(exc, errors.UnsupportedAudio) else status_of(exc)
    error_type = "server_error" if status >= 500 else "invalid_request_error"
    field = exc.details.get("field")
    param = field if isinstance(field, str) else None
    body = openai_error(exc.message, error_type, param, exc.code)
    return JSONResponse(body, status_code=status, headers=_retry_after(status, exc.details))


def domain_response(path: str, exc: errors.StemscribeError) -> JSONResponse:
    """``exc`` in the shape the route at ``path`` (as the router sees it) answers errors in."""
    if path.startswith(OPENAI_PREFIX):
        return openai_response(exc)
    return error_response(status_of(exc), exc.code, exc.message, exc.details)


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.StemscribeError)
    return domain_response(route_path(request.scope), exc)


async def _overload(request: Request, exc: Exception) -> JSONResponse:
    """Serve's back-pressure (for calls not already converted where they were made)."""
    return await _domain(request, as_overloaded(exc))


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
    ]
    first = problems[0] if problems else {"field": "", "message": "invalid"}
    message = f"Invalid field {first['field']!r}: {first['message']}."
    return error_response(422, "invalid_request", message, {"errors": problems})


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed"
    if message == HTTPStatus(exc.status_code).phrase:
        message = f"{message}: {request.method} {request.url.path}"
    message = message if message.endswith(".") else message + "."
    response = error_response(exc.status_code, code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "The server failed to handle the request.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.StemscribeError, _domain)
    for serve_error in SERVE_OVERLOAD:
        app.add_exception_handler(serve_error, _overload)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
