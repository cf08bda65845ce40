"""``Idempotency-Key``: the same key from the same tenant means the same job.

Each key is one small object ``idempotency/{tenant}/{sha256(key)}.json`` holding
the job it created, written after the request was validated and its input stored,
and before the job is saved and handed over. Storage offers no create-if-absent,
so `claim` is "first writer wins" by look, write, re-read: a request that finds
another job under the key (before or after writing) answers with that job. Two
requests that both write before either re-reads can still each start a job; the
window is one storage round trip, and it only opens for duplicates sent at the
same instant.
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


class IdempotencyKeys:
    """Key → job bindings of every tenant, in the job store's storage."""

    def __init__(self, storage: Storage, ttl_seconds: float = TTL_SECONDS) -> None:
        self._storage = storage
        self._ttl = ttl_seconds

    def lookup(self, owner: str, key: str, now: float | None = None) -> IdempotentJob | None:
        """The live binding of ``key`` for ``owner``, or None (never used, or expired)."""
        try:
            raw = json.loads(self._storage.get(self._key(owner, key)))
            entry = IdempotentJob(str(raw["job_id"]), str(raw["kind"]), float(raw["created_at"]))
        except (NotFound, ValueError, KeyError, TypeError):
            return None
        if (time.time() if now is None else now) - entry.created_at >= self._ttl:
            return None
        return entry

    def claim(
        self,
        owner: str,
        key: str,
        job: IdempotentJob,
        stale: Callable[[IdempotentJob], bool] = lambda _: False,
    ) -> IdempotentJob:
        """Bind ``key`` to ``job`` unless a live binding exists; returns the binding that holds.

        ``stale`` says whether an existing binding may be replaced (its job is gone).
        """
        existing = self.lookup(owner, key)
        if existing is not None and not stale(existing):
            return existing
        body = json.dumps(asdict(job)).encode()
        self._storage.put(self._key(owner, key), body, "application/json")
        return self.lookup(owner, key) or job

    @staticmethod
    def _key(owner: str, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{PREFIX}{tenant_hash(owner)}/{digest}.json"
