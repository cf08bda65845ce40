"""Durable job records: one JSON object per job, kept in the same storage as outputs.

Every ingress replica reads them, so status survives replica and app restarts.
Writes are whole-object replacements (atomic in both backends): a reader sees
the old record or the new one, never half of one.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from pipelines.errors import NotFound
from pipelines.jobs.callbacks import Callback
from pipelines.storage import Storage


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class OutputFile:
    """One result object of a job, as stored (URLs are signed at read time)."""

    name: str
    key: str
    bytes: int
    content_type: str
    filename: str


@dataclass
class JobRecord:
    """Everything known about one job; serialised to ``jobs/{job_id}/job.json``."""

    job_id: str
    kind: str
    owner: str
    params: dict[str, Any]
    input: dict[str, Any]
    status: JobStatus = JobStatus.QUEUED
    progress: float = 0.0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    attempts: int = 0
    error: dict[str, Any] | None = None
    outputs: list[OutputFile] = field(default_factory=list)
    archive: OutputFile | None = None
    info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage of the last attempt (decode, queue_wait, forward, stitch,
    encode, upload...), summed over the job; concurrent work counts once per piece."""
    callback: Callback | None = None
    """``callback_url`` and its delivery; pending until delivered or given up."""
    cache_key: str | None = None
    """The result-cache key of the request (``pipelines.jobs.cache``); None: not cached."""
    cached_from: str | None = None
    """Set on a job answered from the cache: the earlier job whose outputs it lists."""
    retain_from: float | None = None
    """When retention starts counting, if not at ``finished_at``: a cached job shares the
    earlier job's files, so it expires with that job."""

    @property
    def callback_pending(self) -> bool:
        """A finished job still owes its callback (the reaper watches for these too)."""
        return self.callback is not None and self.callback.pending

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> JobRecord:
        raw = json.loads(data)
        known = {f.name for f in fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}
        raw["status"] = JobStatus(raw["status"])
        raw["outputs"] = [OutputFile(**o) for o in raw.get("outputs", [])]
        if raw.get("archive"):
            raw["archive"] = OutputFile(**raw["archive"])
        if raw.get("callback"):
            raw["callback"] = Callback.from_dict(raw["callback"])
        return cls(**raw)


def new_job_id() -> str:
    """Time-ordered, unguessable id: listing keys sorts jobs by creation."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


def job_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/"


def output_key(job_id: str, filename: str) -> str:
    return f"jobs/{job_id}/outputs/{filename}"


class JobStore:
    """Job records over any ``Storage`` backend."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @property
    def storage(self) -> Storage:
        return self._storage

    def save(self, record: JobRecord) -> None:
        self._storage.put(self._key(record.job_id), record.to_json(), "application/json")

    def get(self, job_id: str, owner: str | None = None) -> JobRecord:
        """The record; ``NotFound`` when missing or owned by someone else."""
        if not _valid_id(job_id):
            raise NotFound(f"No job with id {job_id!r}.")
        try:
            record = JobRecord.from_json(self._storage.get(self._key(job_id)))
        except NotFound:
            raise NotFound(f"No job with id {job_id!r}.") from None
        if owner is not None and record.owner != owner:
            raise NotFound(f"No job with id {job_id!r}.")
        return record

    def list(self, owner: str | None = None) -> Iterator[JobRecord]:
        """Records newest first (ids are time-ordered)."""
        keys = [o.key for o in self._storage.list("jobs/") if o.key.endswith("/job.json")]
        for key in sorted(keys, reverse=True):
            try:
                record = JobRecord.from_json(self._storage.get(key))
            except NotFound:
                continue  # deleted while we listed
            if owner is None or record.owner == owner:
                yield record

    def request_cancel(self, job_id: str) -> None:
        """A marker beside the record: the runner polls it, so no write races the runner's."""
        self._storage.put(f"{job_prefix(job_id)}cancel", b"1", "text/plain")

    def cancel_requested(self, job_id: str) -> bool:
        return self._storage.exists(f"{job_prefix(job_id)}cancel")

    def delete(self, job_id: str) -> None:
        """Remove the record, its outputs and markers."""
        self._storage.delete_prefix(job_prefix(job_id))

    def delete_outputs(self, job_id: str) -> None:
        self._storage.delete_prefix(f"{job_prefix(job_id)}outputs/")

    @staticmethod
    def _key(job_id: str) -> str:
        return f"{job_prefix(job_id)}job.json"


def _valid_id(job_id: str) -> bool:
    return 0 < len(job_id) <= 64 and all(c in "0123456789abcdef" for c in job_id)
