"""``Idempotency-Key``: the same key from the same tenant means the same job.

Each key is one small object ``idempotency/{tenant}/{sha256(key)}.json`` holding
the job it created, written after the request was validated and its input stored,
and before the job is saved and handed over. `claim` is "first writer wins": with the
storage's compare-and-swap writes (``pipelines.storage.conditional``) exactly one of
several racing requests binds the key and the others answer with its job.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from pipelines.errors import NotFound
from pipelines.jobs.active import tenant_hash
from pipelines.storage import Storage

PREFIX = "idempotency/"
TTL_SECONDS = 24 * 3600
"""How long a key keeps answering with its job."""


@dataclass(frozen=True)
class IdempotentJob:
    """The job an idempotency key created."""

    job_id: str
    kind: str
    created_at: float

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> IdempotentJob | None:
        """The binding, or None for an object that is not one."""
        try:
            raw = json.loads(data)
            return cls(str(raw["job_id"]), str(raw["kind"]), float(raw["created_at"]))
        except (ValueError, KeyError, TypeError):
            return None


class IdempotencyKeys:
    """Key → job bindings of every tenant, in the job store's storage."""

    def __init__(self, storage: Storage, ttl_seconds: float = TTL_SECONDS) -> None:
        self._storage = storage
        self._ttl = ttl_seconds

    def lookup(self, owner: str, key: str) -> IdempotentJob | None:
        """The live binding of ``key`` for ``owner``, or None (never used, or expired)."""
        try:
            return self._live(IdempotentJob.from_json(self._storage.get(self._key(owner, key))))
        except NotFound:
            return None

    def claim(
        self,
        owner: str,
        key: str,
        job: IdempotentJob,
        stale: Callable[[IdempotentJob], bool] = lambda _: False,
    ) -> IdempotentJob:
        """Bind ``key`` to ``job`` unless a live binding exists; returns the binding that holds.

        ``stale`` says whether an existing live binding may be replaced (its job is gone).
        """
        path = self._key(owner, key)
        store = self._storage
        try:
            current = store.get_versioned(path)
        except NotFound:
            current = None
        existing = self._live(IdempotentJob.from_json(current.data)) if current else None
        if existing is not None and not stale(existing):
            return existing
        version = current.version if current else None
        if store.put_if(path, job.to_json(), version, "application/json") is not None:
            return job
        return self.lookup(owner, key) or job  # another request bound it first

    def expire(self, now: float | None = None) -> int:
        """Delete bindings older than the TTL (a listing, no reads); how many went.

        For a periodic sweeper: expired bindings are already ignored, this only
        reclaims their space.
        """
        cutoff = (time.time() if now is None else now) - self._ttl
        old = [o.key for o in self._storage.list(PREFIX) if o.modified.timestamp() < cutoff]
        for key in old:
            self._storage.delete(key)
        return len(old)

    def _live(self, entry: IdempotentJob | None) -> IdempotentJob | None:
        if entry is None or time.time() - entry.created_at >= self._ttl:
            return None
        return entry

    @staticmethod
    def _key(owner: str, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{PREFIX}{tenant_hash(owner)}/{digest}.json"
