"""Job leases: at most one replica runs a job at any moment.

The lease of a job is the object ``jobs/{job_id}/lease``::

    {"owner": "...", "token": "<random>", "expires_at": 1730000000.0, "generation": 2}

Taking it (``JobLease.claim``) and renewing it (``JobLease.renew``) are compare-and-swap
writes (``pipelines.storage.conditional``): a claim names the version it read, so of
replicas racing for the same expired (or absent) lease exactly one write lands and
the others learn they lost. A claim succeeds only when no lease exists or the one
there has expired; ``generation`` counts successful claims, so it also tells how
many times a job was started. The holder renews at every heartbeat; a renewal that
finds another writer's version means the job was taken over, and the old holder
stops without writing its record (``LeaseLost``).

What it does not guarantee: a holder cut off from storage for longer than the
lease lifetime can have one write that was already in flight land after the new
holder's claim (the new holder's next write replaces it). Keep
``jobs.stale_after_seconds`` (the lifetime) above ``storage_retry_seconds``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from pipelines.errors import NotFound, StorageUnavailable
from pipelines.jobs.records import job_prefix
from pipelines.storage import Storage
from pipelines.storage.conditional import Versioned

Clock = Callable[[], float]


class LeaseLost(Exception):
    """Another replica holds the job now: stop, and leave its record alone."""


def lease_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}lease"


@dataclass(frozen=True)
class LeaseState:
    """The content of a lease object."""

    owner: str
    token: str
    expires_at: float
    generation: int

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> LeaseState:
        raw = json.loads(data)
        return cls(
            str(raw["owner"]), str(raw["token"]), float(raw["expires_at"]), int(raw["generation"])
        )


def read_lease(storage: Storage, job_id: str) -> LeaseState | None:
    """The lease as stored (``None`` when the job was never claimed)."""
    current = _read(storage, lease_key(job_id))
    return None if current is None else LeaseState.from_json(current.data)


class JobLease:
    """A held lease; ``renew`` it more often than ``ttl``, ``release`` it when done."""

    def __init__(
        self,
        storage: Storage,
        job_id: str,
        state: LeaseState,
        version: str,
        ttl: float,
        clock: Clock,
    ) -> None:
        self.job_id = job_id
        self.state = state
        self.ttl = ttl
        self.lost = False
        self._storage = storage
        self._version = version
        self._clock = clock

    @classmethod
    def claim(
        cls, storage: Storage, job_id: str, owner: str, ttl: float, clock: Clock = time.time
    ) -> JobLease | None:
        """The lease, if it was free or expired and this claim won; else ``None``."""
        key = lease_key(job_id)
        current = _read(storage, key)
        previous = None if current is None else LeaseState.from_json(current.data)
        if previous is not None and previous.expires_at > clock():
            return None
        generation = 1 if previous is None else previous.generation + 1
        state = LeaseState(owner, secrets.token_hex(8), clock() + ttl, generation)
        version = _swap(storage, key, state, None if current is None else current.version)
        return None if version is None else cls(storage, job_id, state, version, ttl, clock)

    def renew(self) -> None:
        """Extend the lease by ``ttl``; ``LeaseLost`` if another replica took it.

        ``StorageUnavailable`` says nothing about ownership and is left to the caller.
        """
        if self.lost:
            raise LeaseLost(f"job {self.job_id}: lease lost")
        state = replace(self.state, expires_at=self._clock() + self.ttl)
        version = _swap(self._storage, lease_key(self.job_id), state, self._version)
        if version is None:
            self.lost = True
            raise LeaseLost(f"job {self.job_id}: taken over by another replica")
        self.state, self._version = state, version

    def release(self) -> None:
        """Let the next claim through at once (best effort; expiry covers a failure)."""
        if self.lost:
            return
        state = replace(self.state, expires_at=0.0)
        try:
            if _swap(self._storage, lease_key(self.job_id), state, self._version) is not None:
                self.state = state
        except (StorageUnavailable, NotFound):
            pass


def _read(storage: Storage, key: str) -> Versioned | None:
    try:
        return storage.get_versioned(key)
    except NotFound:
        return None


def _swap(storage: Storage, key: str, state: LeaseState, version: str | None) -> str | None:
    data = state.to_json()
    landed = storage.put_if(key, data, version, "application/json")
    if landed is not None:
        return landed
    # A retried write whose first attempt landed finds its own content: that is a win.
    current = _read(storage, key)
    return current.version if current is not None and current.data == data else None
