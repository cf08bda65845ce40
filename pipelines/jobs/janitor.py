"""Finding interrupted jobs, and deleting what has outlived its retention.

Both walk the listing of ``jobs/``. Records are read only for jobs not yet known to
be finished: a finished job never changes again, so each replica remembers when it
finished. After the first pass, a pass costs one listing plus one read per
unfinished job. Every step is idempotent, so any number of replicas may run passes
at the same time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from pipelines.errors import NotFound
from pipelines.jobs.cache import retained_from
from pipelines.jobs.records import JobRecord, JobStatus, JobStore, job_prefix
from pipelines.storage import ObjectInfo

log = logging.getLogger(__name__)

RECORD_NAME = "job.json"


@dataclass(frozen=True)
class SweepReport:
    """What one sweep deleted."""

    jobs: int = 0
    uploads: int = 0


class Janitor:
    """The reaper's and the sweeper's view of the job store."""

    def __init__(self, store: JobStore, *, stale_after: float, retention: float | None) -> None:
        self._store = store
        self._stale_after = stale_after
        self._retention = retention
        self._finished: dict[str, float] = {}
        self.queued: dict[str, int] = {}
        """Jobs still ``queued`` at the last ``stale_jobs`` pass, by kind: the backlog."""

    def stale_jobs(self, now: float) -> list[str]:
        """Unfinished jobs with no sign of life for ``stale_after`` seconds, oldest first.

        A running job's sign of life is its heartbeat; a queued job's, its acceptance
        (its call to a coordinator was lost, or it waited that long in a queue; either
        way, running it through the lease is safe). A finished job whose callback is
        still owed counts too: its delivery heartbeats like a run.
        """
        cutoff = now - self._stale_after
        unfinished = self._unfinished(_by_folder(self._store.storage.list("jobs/")))
        self.queued = _count_queued(unfinished.values())
        stale = [r for r in unfinished.values() if _last_sign_of_life(r) < cutoff]
        return [r.job_id for r in sorted(stale, key=lambda r: r.created_at)]

    def sweep(self, now: float) -> SweepReport:
        """Delete finished jobs (records, outputs, markers) and uploads past retention.

        Jobs that are not finished are kept whatever their age, and so are the uploads
        they read their input from.
        """
        if self._retention is None:
            return SweepReport()
        cutoff = now - self._retention
        storage = self._store.storage
        folders = _by_folder(storage.list("jobs/"))
        unfinished = self._unfinished(folders)
        expired = [
            job_id
            for job_id, objects in folders.items()
            if job_id not in unfinished and self._expired(job_id, objects, cutoff)
        ]
        for job_id in expired:
            storage.delete_prefix(job_prefix(job_id))
            self._finished.pop(job_id, None)
        inputs = {str(r.input.get("key", "")) for r in unfinished.values()}
        uploads = [
            upload_id
            for upload_id, objects in _by_folder(storage.list("uploads/")).items()
            if _newest(objects) < cutoff and not any(o.key in inputs for o in objects)
        ]
        for upload_id in uploads:
            storage.delete_prefix(f"uploads/{upload_id}/")
        if expired or uploads:
            log.info("retention: deleted %d jobs and %d uploads", len(expired), len(uploads))
        return SweepReport(len(expired), len(uploads))

    def _unfinished(self, folders: dict[str, list[ObjectInfo]]) -> dict[str, JobRecord]:
        for gone in self._finished.keys() - folders.keys():
            del self._finished[gone]  # deleted by its owner since the last pass
        unfinished: dict[str, JobRecord] = {}
        for job_id, objects in folders.items():
            if job_id in self._finished or not _has_record(objects):
                continue
            record = self._read(job_id)
            if record is None:
                continue
            if record.status.finished and not record.callback_pending:
                self._finished[job_id] = retained_from(record)
            else:  # a finished job that still owes its callback is watched like a running one
                unfinished[job_id] = record
        return unfinished

    def _expired(self, job_id: str, objects: list[ObjectInfo], cutoff: float) -> bool:
        if job_id in self._finished:
            return self._finished[job_id] < cutoff
        # No record (deleted meanwhile, or left behind by a failed delete): judge by age.
        return not _has_record(objects) and _newest(objects) < cutoff

    def _read(self, job_id: str) -> JobRecord | None:
        try:
            return self._store.get(job_id)
        except NotFound:
            return None  # deleted while we listed
        except ValueError:
            log.warning("job %s: unreadable record", job_id)
            return None


def _by_folder(objects: Iterable[ObjectInfo]) -> dict[str, list[ObjectInfo]]:
    """``prefix/{id}/...`` objects grouped by ``id``."""
    folders: dict[str, list[ObjectInfo]] = defaultdict(list)
    for info in objects:
        parts = info.key.split("/")
        if len(parts) >= 3:
            folders[parts[1]].append(info)
    return folders


def _count_queued(records: Iterable[JobRecord]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        if record.status is JobStatus.QUEUED:
            counts[record.kind] += 1
    return dict(counts)


def _has_record(objects: list[ObjectInfo]) -> bool:
    return any(o.key.count("/") == 2 and o.key.endswith(f"/{RECORD_NAME}") for o in objects)


def _newest(objects: list[ObjectInfo]) -> float:
    return max(o.modified.timestamp() for o in objects)


def _last_sign_of_life(record: JobRecord) -> float:
    if record.status is JobStatus.QUEUED:
        return record.created_at
    return record.heartbeat_at or record.started_at or record.created_at
