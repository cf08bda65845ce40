"""Speech to text with faster-whisper: model loading, transcription, the transcript model."""

from __future__ import annotations

from pipelines.transcription.languages import (
    LANGUAGES,
    language_name,
    normalize_language,
)
from pipelines.transcription.models import (
    check_language_for,
    default_compute_type,
    load_whisper,
    pick_model,
    resolve_device,
    resolve_model,
    with_held_calls,
)
from pipelines.transcription.transcribe import (
    SAMPLE_RATE,
    TranscribeOptions,
    iter_segments,
    start_transcription,
    transcribe,
)
from pipelines.transcription.transcript import Segment, Task, Transcript, Word

__all__ = [
    "LANGUAGES",
    "SAMPLE_RATE",
    "Segment",
    "Task",
    "TranscribeOptions",
    "Transcript",
    "Word",
    "check_language_for",
    "default_compute_type",
    "iter_segments",
    "language_name",
    "load_whisper",
    "normalize_language",
    "pick_model",
    "resolve_device",
    "resolve_model",
    "start_transcription",
    "transcribe",
    "with_held_calls",
]
