"""A job's callback as its record keeps it: where to POST, and every attempt so far.

The callback is part of the durable job record from the moment the job is accepted,
so whichever replica finishes the job (or takes it up after a crash) finds the
delivery still owed and makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CallbackState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class CallbackAttempt:
    """One POST: when, and what came back (an HTTP status, or why there was none)."""

    at: float
    status_code: int | None = None
    error: str | None = None


@dataclass
class Callback:
    """``callback_url`` of a job and the state of its one delivery."""

    url: str
    state: CallbackState = CallbackState.PENDING
    attempts: list[CallbackAttempt] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        return self.state is CallbackState.PENDING

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Callback:
        attempts = [CallbackAttempt(**a) for a in raw.get("attempts", [])]
        return cls(str(raw["url"]), CallbackState(raw.get("state", "pending")), attempts)


def message_id(job_id: str) -> str:
    """The ``webhook-id`` of a job's callback: the same on every attempt, so receivers
    can drop a repeat (delivery is at least once)."""
    return f"msg_{job_id}"
