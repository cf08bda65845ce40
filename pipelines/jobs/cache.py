"""The result cache: a repeated request answered from the tenant's earlier finished job.

Output is a function of the input bytes, the model and every parameter (the seed
included: a request without one matches an earlier request without one). The cache
key is the SHA-256 of those and of the tenant and job kind; the index maps it to the
job that answered it, one small object ``cache/{tenant}/{key}.json`` written when the
job succeeds. A hit becomes a new job (its own id, ``cached_from`` the earlier one)
that lists the earlier job's outputs: nothing is run or copied. It shares the earlier
job's files, so it is retained only as long as that job is, and an entry is a hit only
while the earlier job is within retention, succeeded, and still has every file.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from pipelines.errors import NotFound
from pipelines.jobs.active import tenant_hash
from pipelines.jobs.records import JobRecord, JobStatus, JobStore

PREFIX = "cache/"


def cache_key(owner: str, kind: str, input_sha256: str, params: dict[str, Any]) -> str:
    """The key of a request: tenant, kind, input bytes and parameters, canonically hashed."""
    canonical = {"owner": owner, "kind": kind, "input": input_sha256, "params": params}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """The job that answered a key, and when its retention started."""

    job_id: str
    retain_from: float

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CacheEntry | None:
        try:
            raw = json.loads(data)
            return cls(str(raw["job_id"]), float(raw["retain_from"]))
        except (ValueError, KeyError, TypeError):
            return None


class ResultCache:
    """Key → finished job, per tenant, in the job store's storage."""

    def __init__(self, store: JobStore, retention_seconds: float | None) -> None:
        self._store = store
        self._retention = retention_seconds

    def remember(self, record: JobRecord) -> None:
        """Index a succeeded job under its ``cache_key`` (a later success replaces it)."""
        if record.cache_key is None or record.status is not JobStatus.SUCCEEDED:
            return
        entry = CacheEntry(record.job_id, retained_from(record))
        path = self._path(record.owner, record.cache_key)
        self._store.storage.put(path, entry.to_json(), "application/json")

    def lookup(self, owner: str, key: str, now: float | None = None) -> JobRecord | None:
        """The earlier job that answers ``key`` for ``owner``, or None."""
        now = time.time() if now is None else now
        try:
            entry = CacheEntry.from_json(self._store.storage.get(self._path(owner, key)))
        except NotFound:
            return None
        if entry is None or self._expired(entry.retain_from, now):
            return None
        try:
            record = self._store.get(entry.job_id, owner)
        except NotFound:
            return None  # deleted by its owner, or swept
        if record.status is not JobStatus.SUCCEEDED or record.cache_key != key:
            return None
        files = [o.key for o in record.outputs] + ([record.archive.key] if record.archive else [])
        if not all(self._store.storage.exists(k) for k in files):
            return None
        return record

    def expire(self, now: float | None = None) -> int:
        """Delete entries past retention (a listing, no reads); how many went."""
        if self._retention is None:
            return 0
        cutoff = (time.time() if now is None else now) - self._retention
        storage = self._store.storage
        old = [o.key for o in storage.list(PREFIX) if o.modified.timestamp() < cutoff]
        for key in old:
            storage.delete(key)
        return len(old)

    def forget(self, record: JobRecord) -> None:
        """Drop the entry that points at ``record`` (it is being deleted)."""
        if record.cache_key is None:
            return
        path = self._path(record.owner, record.cache_key)
        try:
            entry = CacheEntry.from_json(self._store.storage.get(path))
        except NotFound:
            return
        if entry is not None and entry.job_id == record.job_id:
            self._store.storage.delete(path)

    def _expired(self, retain_from: float, now: float) -> bool:
        return self._retention is not None and retain_from + self._retention <= now

    @staticmethod
    def _path(owner: str, key: str) -> str:
        return f"{PREFIX}{tenant_hash(owner)}/{key}.json"


def retained_from(record: JobRecord) -> float:
    """When ``record``'s retention started counting."""
    return record.retain_from or record.finished_at or record.created_at


def repeat(earlier: JobRecord, request: JobRecord, now: float | None = None) -> JobRecord:
    """``request`` (a new, queued record) answered with ``earlier``'s outputs: succeeded."""
    now = time.time() if now is None else now
    return replace(
        request,
        status=JobStatus.SUCCEEDED,
        progress=1.0,
        started_at=now,
        finished_at=now,
        outputs=list(earlier.outputs),
        archive=earlier.archive,
        info=dict(earlier.info),
        cached_from=earlier.job_id,
        retain_from=retained_from(earlier),
    )
