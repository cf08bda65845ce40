"""Domain exceptions raised by the processing core.

Each carries a stable snake_case ``code`` and a human sentence. The ingress maps
each class to exactly one HTTP status in one place (``deployments/api/errors.py``), which also holds
the errors of the HTTP layer itself (keys, request rates).
"""

from __future__ import annotations

from typing import Any


class StemscribeError(Exception):
    """Base class: a failure a client can be told about."""

    code = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidRequest(StemscribeError):
    """A field has a value the service cannot use."""

    code = "invalid_request"


class UnknownModel(InvalidRequest):
    """The requested model is not enabled on this deployment."""

    code = "unknown_model"


class ModelUnavailable(StemscribeError):
    """An enabled model cannot be used now: its weights could not be fetched or loaded.

    ``details`` names the ``model`` and the ``reason``; the load is tried again later.
    """

    code = "model_unavailable"


class ModelLoading(StemscribeError):
    """An enabled model is still being fetched or loaded; retry in a moment."""

    code = "model_loading"


class UnknownJobKind(InvalidRequest):
    """A job record names a kind this service does not run."""

    code = "unknown_job_kind"


class UnknownStem(InvalidRequest):
    """A requested stem is not produced by the chosen model."""

    code = "unknown_stem"


class UnsupportedAudio(StemscribeError):
    """The bytes are not audio that FFmpeg can decode."""

    code = "unsupported_audio"


class AudioTooLong(StemscribeError):
    """The audio lasts longer than the configured limit."""

    code = "audio_too_long"


class InsufficientScratch(StemscribeError):
    """The job needs more local scratch disk than is free (``details``: needed, free)."""

    code = "insufficient_storage"


class PayloadTooLarge(StemscribeError):
    """The upload is larger than the configured limit."""

    code = "payload_too_large"


class NotFound(StemscribeError):
    """The object or job does not exist (or belongs to someone else)."""

    code = "not_found"


class InvalidSignature(StemscribeError):
    """A signed URL was tampered with or has expired."""

    code = "invalid_signature"


class StorageUnavailable(StemscribeError):
    """The storage backend could not be reached."""

    code = "storage_unavailable"


class JobCancelled(StemscribeError):
    """The job was cancelled while it ran."""

    code = "job_cancelled"


class Overloaded(StemscribeError):
    """The service is at capacity; retry later."""

    code = "overloaded"


class IdempotencyConflict(StemscribeError):
    """An ``Idempotency-Key`` is in use by another request, or was used for another kind."""

    code = "idempotency_conflict"


class JobAbandoned(StemscribeError):
    """The job was interrupted (its replica died or lost storage) on every attempt allowed."""

    code = "job_abandoned"


class JobNotFinished(StemscribeError):
    """A job's results were asked for before it succeeded."""

    code = "job_not_finished"


class ModelNotAvailable(StemscribeError):
    """A model family a client names that this service does not provide."""

    code = "model_not_available"
