"""Messages of the live transcription WebSocket (DESIGN.md §2).

Client frames become typed events (`FrameDecoder`); server messages are plain
dicts built by `ready`, `partial`, `final`, `error` and `closed`, ready for
``send_json``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.errors import StemscribeError
from pipelines.streaming.decoding import DecodedWord
from pipelines.streaming.params import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioFormat
from pipelines.streaming.resample import Resampler

ServerEvent = dict[str, Any]
"""A server → client message, ready for ``send_json``."""

DEFAULT_MAX_FRAME_BYTES = 1 << 20
"""Largest audio payload per frame: about 5 s of 48 kHz float32."""


class ProtocolError(StemscribeError):
    """A client frame the server cannot use; the session goes on."""

    code = "protocol_error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AudioChunk:
    """Audio from the client, already 16 kHz mono float32."""

    samples: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Finalize:
    """Flush: emit finals for everything heard so far; the session goes on."""


@dataclass(frozen=True)
class Close:
    """Finalize, then close the socket (1000)."""


@dataclass(frozen=True)
class KeepAlive:
    """Nothing to do; keeps idle timers from firing."""


ClientEvent = AudioChunk | Finalize | Close | KeepAlive


def pcm_to_float(data: bytes, encoding: str) -> np.ndarray:
    """Raw little-endian PCM bytes → float32 samples in [-1, 1]."""
    width = 2 if encoding == "pcm_s16le" else 4
    if len(data) % width:
        raise ProtocolError(
            "invalid_audio",
            f"{encoding} audio needs a multiple of {width} bytes, got {len(data)}",
        )
    if width == 2:
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        raise ProtocolError("invalid_audio", "f32le audio holds NaN or infinite samples")
    return samples


class FrameDecoder:
    """Turns one session's WebSocket frames into `ClientEvent`s.

    Stateful only for resampling: each source rate keeps its filter history
    between frames. A finalize or close first yields the audio still inside
    the filter, so events come back as a list.
    """

    def __init__(self, fmt: AudioFormat, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES):
        if fmt.channels != 1:
            raise ValueError("only mono audio is supported")
        self.format = fmt
        self.max_frame_bytes = max_frame_bytes
        self._resampler = Resampler(fmt.sample_rate)

    def decode(self, frame: bytes | str) -> list[ClientEvent]:
        """Parse one frame; raises `ProtocolError` for anything malformed."""
        if isinstance(frame, bytes | bytearray | memoryview):
            return [self._audio(bytes(frame), self.format)]
        return self._text(frame)

    def flush(self) -> AudioChunk | None:
        """Audio still inside the resampler, if any."""
        tail = self._resampler.flush()
        return AudioChunk(tail) if len(tail) else None

    def _text(self, text: str) -> list[ClientEvent]:
        if len(text) > self.max_frame_bytes * 4 // 3 + 1024:
            raise ProtocolError("frame_too_large", "text frame is larger than the limit")
        message = _json_object(text)
        kind = message.get("type", message.get("event"))
        if kind == "audio":
            return [self._json_audio(message)]
        if kind == "finalize":
            return self._with_tail(Finalize())
        if kind in ("close", "finish"):
            return self._with_tail(Close())
        if kind == "keepalive":
            return [KeepAlive()]
        raise ProtocolError("unknown_message_type", f"unknown message type {kind!r}")

    def _json_audio(self, message: dict[str, Any]) -> AudioChunk:
        if "type" in message:
            return self._audio(_base64(message.get("audio")), self.format)
        payload = message.get("payload")
        if not isinstance(payload, dict):
            raise ProtocolError("invalid_message", "audio event needs a 'payload' object")
        fmt = _mime_format(payload.get("mimeType"), self.format)
        return self._audio(_base64(payload.get("data")), fmt)

    def _audio(self, data: bytes, fmt: AudioFormat) -> AudioChunk:
        if len(data) > self.max_frame_bytes:
            raise ProtocolError(
                "frame_too_large",
                f"audio frame of {len(data)} bytes exceeds {self.max_frame_bytes}",
            )
        samples = pcm_to_float(data, fmt.encoding)
        head = self._switch_rate(fmt.sample_rate)
        resampled = self._resampler.resample(samples)
        return AudioChunk(np.concatenate([head, resampled]) if len(head) else resampled)

    def _switch_rate(self, rate: int) -> np.ndarray:
        if rate == self._resampler.rate:
            return np.zeros(0, dtype=np.float32)
        # A new source rate restarts the filter; drain the old one first.
        tail = self._resampler.flush()
        self._resampler = Resampler(rate)
        return tail

    def _with_tail(self, event: ClientEvent) -> list[ClientEvent]:
        tail = self.flush()
        return [tail, event] if tail is not None else [event]


def _json_object(text: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except ValueError:
        raise ProtocolError("invalid_json", "text frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ProtocolError("invalid_message", "text frame must be a JSON object")
    return message


def _base64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError("invalid_message", "audio must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_base64", "audio is not valid base64") from None


def _mime_format(mime: object, default: AudioFormat) -> AudioFormat:
    """``audio/pcm;rate=N`` (16-bit little-endian mono, as the seed backend sent)."""
    if mime is None:
        return AudioFormat("pcm_s16le", default.sample_rate)
    if not isinstance(mime, str):
        raise ProtocolError("invalid_message", "mimeType must be a string")
    kind, *params = (part.strip() for part in mime.split(";"))
    if kind.lower() != "audio/pcm":
        raise ProtocolError("unsupported_format", f"mimeType {kind!r} is not audio/pcm")
    rate = default.sample_rate
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "rate":
            rate = _rate(value.strip())
    return AudioFormat("pcm_s16le", rate)


def _rate(value: str) -> int:
    if not value.isdigit() or not MIN_SAMPLE_RATE <= int(value) <= MAX_SAMPLE_RATE:
        raise ProtocolError(
            "unsupported_format",
            f"rate must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
        )
    return int(value)


def ready(session_id: str, model: str) -> ServerEvent:
    """First message of a session."""
    return {"type": "ready", "session_id": session_id, "model": model}


def partial(text: str, start: float, end: float) -> ServerEvent:
    """The unconfirmed tail; replaced by later partials and by the next final."""
    return {"type": "partial", "text": text, "start": _ms(start), "end": _ms(end)}


def final(text: str, start: float, end: float, words: Sequence[DecodedWord]) -> ServerEvent:
    """Committed text: never changes, never repeats."""
    return {
        "type": "final",
        "text": text,
        "start": _ms(start),
        "end": _ms(end),
        "words": [_word(w) for w in words],
    }


def error(code: str, message: str) -> ServerEvent:
    """A problem the client should know about (the socket may stay open)."""
    return {"type": "error", "code": code, "message": message}


def closed(reason: str) -> ServerEvent:
    """Last message before the server closes the socket."""
    return {"type": "closed", "reason": reason}


def _word(word: DecodedWord) -> dict[str, Any]:
    return {
        "word": word.word.strip(),
        "start": _ms(word.start),
        "end": _ms(word.end),
        "probability": round(float(word.probability), 4),
    }


def _ms(seconds: float) -> float:
    return round(float(seconds), 3)
