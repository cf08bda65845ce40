"""Transcripts shaped as OpenAI ``/v1/audio/transcriptions`` (and ``translations``) bodies.

The shapes follow the ``openai`` Python client's models (``TranscriptionVerbose``,
``TranscriptionSegment``, ``TranscriptionWord``), so the official client parses
them unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipelines.errors import InvalidRequest
from pipelines.subtitles import to_srt, to_vtt
from pipelines.transcription.languages import language_name
from pipelines.transcription.transcript import Segment, Transcript

__all__ = [
    "GRANULARITIES",
    "RESPONSE_FORMATS",
    "openai_error",
    "render",
    "verbose_json",
]

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")

_JSON = "application/json"
_MEDIA_TYPES = {
    "json": _JSON,
    "verbose_json": _JSON,
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


def render(
    transcript: Transcript,
    response_format: str = "json",
    granularities: Iterable[str] = ("segment",),
) -> tuple[str | dict[str, Any], str]:
    """The response body and its media type for one ``response_format``.

    Dicts are for JSON responses, strings are sent as they are. ``granularities``
    (``timestamp_granularities[]``) only matter for ``verbose_json``: ``word``
    adds the ``words`` list. Unknown formats or granularities raise
    ``InvalidRequest`` naming the valid values.
    """
    wanted = _granularities(granularities)
    if response_format == "json":
        body: str | dict[str, Any] = {"text": transcript.text}
    elif response_format == "text":
        body = transcript.text + "\n"
    elif response_format == "srt":
        body = to_srt(transcript)
    elif response_format == "vtt":
        body = to_vtt(transcript)
    elif response_format == "verbose_json":
        body = verbose_json(transcript, words="word" in wanted)
    else:
        raise InvalidRequest(
            f"Unsupported response_format {response_format!r}: use one of "
            f"{', '.join(RESPONSE_FORMATS)}.",
            details={"response_format": response_format},
        )
    return body, _MEDIA_TYPES[response_format]


def verbose_json(transcript: Transcript, *, words: bool = False) -> dict[str, Any]:
    """The ``verbose_json`` body; ``words`` is present only when asked for.

    ``language`` is the English name as OpenAI reports it (``"english"``); a
    translation is always reported as English.
    """
    language = "en" if transcript.task == "translate" else transcript.language
    body: dict[str, Any] = {
        "task": transcript.task,
        "language": language_name(language),
        "duration": transcript.duration,
        "text": transcript.text,
        "segments": [_segment(segment) for segment in transcript.segments],
    }
    if words:
        body["words"] = [
            {"word": word.word.strip(), "start": word.start, "end": word.end}
            for segment in transcript.segments
            for word in segment.words
            if word.word.strip()
        ]
    return body


def openai_error(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _segment(segment: Segment) -> dict[str, Any]:
    return {
        "id": segment.id,
        "seek": segment.seek,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": segment.temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }


def _granularities(values: Iterable[str]) -> set[str]:
    chosen = {values} if isinstance(values, str) else set(values)
    chosen = chosen or {"segment"}
    unknown = sorted(chosen - set(GRANULARITIES))
    if unknown:
        raise InvalidRequest(
            f"Unsupported timestamp_granularities {', '.join(map(repr, unknown))}: "
            f"use {' and/or '.join(GRANULARITIES)}.",
            details={"timestamp_granularities": unknown},
        )
    return chosen
