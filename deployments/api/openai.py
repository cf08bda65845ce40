"""OpenAI-compatible ``/v1/audio/transcriptions`` and ``/v1/audio/translations``.

Synchronous like OpenAI's, answering in its shapes and its error format, so the
official ``openai`` client works unchanged against ``base_url=.../v1``.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from deployments.api.bodies import upload_part
from deployments.api.errors import openai_response
from deployments.api.services import AppServices, Services
from pipelines.errors import InvalidRequest, StemscribeError
from pipelines.jobs.transcription import decode_speech
from pipelines.openai_format import GRANULARITIES, RESPONSE_FORMATS, render
from pipelines.transcription import TranscribeOptions, check_language_for

router = APIRouter(prefix="/v1/audio", tags=["openai"])

FIELDS = {"file", "model", "language", "prompt", "response_format", "temperature"}
GRANULARITY_FIELDS = ("timestamp_granularities[]", "timestamp_granularities")
FORM_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "model": {"type": "string"},
        "language": {"type": "string"},
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
        "temperature": {"type": "number"},
        "timestamp_granularities[]": {
            "type": "array",
            "items": {"type": "string", "enum": list(GRANULARITIES)},
        },
    },
}
# The form is parsed by hand (OpenAI's field names and errors), so it is documented here.
OPENAPI_EXTRA = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": FORM_SCHEMA}},
    }
}


@router.post("/transcriptions", response_model=None, openapi_extra=OPENAPI_EXTRA)
async def transcriptions(request: Request, services: AppServices) -> Response:
    """Speech to text in the audio's language."""
    return await _handle(request, services, "transcribe")


@router.post("/translations", response_model=None, openapi_extra=OPENAPI_EXTRA)
async def translations(request: Request, services: AppServices) -> Response:
    """Speech to English text."""
    return await _handle(request, services, "translate")


async def _handle(request: Request, services: Services, task: str) -> Response:
    try:
        return await _respond(request, services, task)
    except StemscribeError as exc:
        return openai_response(exc)


async def _respond(request: Request, services: Services, task: str) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidRequest(
            "Send multipart/form-data with a file part.", details={"field": "file"}
        )
    form = await _form(request)
    try:
        upload, fields = upload_part(form, "file", services), _fields(form)
        speech = await asyncio.to_thread(
            decode_speech, upload.file, services.args.limits.max_audio_seconds
        )
    finally:
        await form.close()
    granularities = [
        g for key in GRANULARITY_FIELDS for g in form.getlist(key) if isinstance(g, str)
    ]
    model = services.transcriber.resolve(fields.get("model"))
    options = _options(fields, task, "word" in granularities)
    check_language_for(model, options.language)
    response_format = fields.get("response_format") or "json"
    _check_format(response_format, granularities)
    transcript = await services.transcriber.transcribe(model, speech, options)
    body, media_type = render(transcript, response_format, granularities or ["segment"])
    if isinstance(body, dict):
        return JSONResponse(body, media_type=media_type)
    return Response(body, media_type=media_type)


async def _form(request: Request) -> FormData:
    try:
        return await request.form()
    except HTTPException as exc:  # Starlette refuses a malformed multipart body this way
        raise InvalidRequest(f"{exc.detail}", details={"field": "file"}) from None


def _check_format(response_format: str, granularities: list[str]) -> None:
    """Refuse a bad format before any audio is decoded or transcribed."""
    if response_format not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"Unsupported response_format {response_format!r}: use one of "
            f"{', '.join(RESPONSE_FORMATS)}.",
            details={"field": "response_format"},
        )
    unknown = [g for g in granularities if g not in GRANULARITIES]
    if unknown:
        raise InvalidRequest(
            f"Unsupported timestamp granularity {unknown[0]!r}: use word or segment.",
            details={"field": "timestamp_granularities[]"},
        )


def _fields(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if k in FIELDS and isinstance(v, str)}


def _options(fields: dict[str, str], task: str, words: bool) -> TranscribeOptions:
    try:
        temperature = float(fields.get("temperature") or 0.0)
    except ValueError:
        raise InvalidRequest(
            "temperature must be a number.", details={"field": "temperature"}
        ) from None
    # raises InvalidRequest for a bad language or temperature
    return TranscribeOptions(
        language=fields.get("language") or None,
        task=task,  # type: ignore[arg-type]  # checked by TranscribeOptions
        word_timestamps=words,
        initial_prompt=fields.get("prompt") or None,
        temperature=temperature,
    )
