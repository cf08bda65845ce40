"""Query parameters of the live transcription WebSocket."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pipelines.errors import InvalidRequest

Encoding = Literal["pcm_s16le", "f32le"]
ENCODINGS: tuple[Encoding, ...] = ("pcm_s16le", "f32le")
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_MODEL = re.compile(r"^[\w.:/-]{1,200}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class AudioFormat:
    """How a client's raw audio bytes are laid out."""

    encoding: Encoding = "pcm_s16le"
    sample_rate: int = 16_000
    channels: int = 1

    @property
    def bytes_per_sample(self) -> int:
        """Width of one sample: 2 for s16le, 4 for f32le."""
        return 2 if self.encoding == "pcm_s16le" else 4


@dataclass(frozen=True)
class StreamParams:
    """Validated query parameters of one streaming session."""

    model: str | None = None
    """Transcription model name; None means the deployment's default."""
    language: str | None = None
    """ISO 639 code; None (or ``auto``) lets the model detect it."""
    sample_rate: int = 16_000
    """Rate of the client's audio; resampled to 16 kHz on arrival."""
    encoding: Encoding = "pcm_s16le"
    """Sample layout of binary and base64 audio."""
    interim_results: bool = True
    """Whether the client wants ``partial`` messages."""

    @property
    def audio_format(self) -> AudioFormat:
        """The format raw audio frames of this session arrive in."""
        return AudioFormat(self.encoding, self.sample_rate)


def parse_stream_params(query: Mapping[str, str]) -> StreamParams:
    """Validate the WebSocket query string; unknown keys (``token``…) are ignored.

    Raises `InvalidRequest` naming the field in ``details``.
    """
    return StreamParams(
        model=_model(query.get("model")),
        language=_language(query.get("language")),
        sample_rate=_sample_rate(query.get("sample_rate")),
        encoding=_encoding(query.get("encoding")),
        interim_results=_flag("interim_results", query.get("interim_results"), True),
    )


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, details={"field": field})


def _model(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not _MODEL.match(value):
        raise _invalid("model", f"model {value!r} is not a valid model name")
    return value


def _language(value: str | None) -> str | None:
    if value is None or value.lower() in ("", "auto"):
        return None
    if not _LANGUAGE.match(value.lower()):
        raise _invalid("language", f"language {value!r} is not an ISO 639 code like 'en'")
    return value.lower()


def _sample_rate(value: str | None) -> int:
    if value is None:
        return 16_000
    try:
        rate = int(value)
    except ValueError:
        raise _invalid("sample_rate", f"sample_rate {value!r} is not an integer") from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise _invalid(
            "sample_rate",
            f"sample_rate must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
        )
    return rate


def _encoding(value: str | None) -> Encoding:
    if value is None:
        return "pcm_s16le"
    if value not in ENCODINGS:
        raise _invalid("encoding", f"encoding must be one of {', '.join(ENCODINGS)}")
    return value


def _flag(field: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _invalid(field, f"{field} must be true or false")
