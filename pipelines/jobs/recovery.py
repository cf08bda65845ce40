"""Running a job exactly once at a time, however many callers ask for it.

Every path that starts a job goes through ``run_exclusively``: the first call from
the ingress, the ingress's retry after a replica died, and the reaper's call for a
job whose heartbeat went stale. Each takes the job's lease first
(``pipelines.jobs.lease``); a caller that cannot take it returns at once with the
job's current status, so the paths converge on one run. After the claim the record
is read again, because the job may have finished between the first read and the
claim.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pipelines.errors import JobAbandoned
from pipelines.jobs.lease import JobLease
from pipelines.jobs.records import JobRecord, JobStatus, JobStore

log = logging.getLogger(__name__)

ClaimedRun = Callable[[JobRecord, JobLease], Awaitable[JobRecord]]
"""Runs a claimed job to its final record (``run_file_job`` with the lease); also the
shape of a claimed finished job's callback delivery."""


@dataclass(frozen=True)
class RecoveryPolicy:
    """When a job counts as interrupted, and how often it may be started."""

    stale_after: float
    """Seconds without a heartbeat after which a job is taken up again; the lease lifetime."""
    max_attempts: int
    """Starts a job gets; a job interrupted that many times is marked failed."""

    @property
    def heartbeat(self) -> float:
        """How often a running job proves it is alive (and renews its lease)."""
        return self.stale_after / 4


async def run_exclusively(
    store: JobStore,
    job_id: str,
    owner: str,
    policy: RecoveryPolicy,
    run: ClaimedRun,
    deliver: ClaimedRun | None = None,
) -> JobStatus:
    """Run the job if no one else is running it, then deliver its callback if one is
    owed (``deliver``, under the same lease); its status when this call returns."""
    record = await asyncio.to_thread(store.get, job_id)
    if _done(record):
        return record.status
    claim = JobLease.claim
    lease = await asyncio.to_thread(claim, store.storage, job_id, owner, policy.stale_after)
    if lease is None:
        log.info("job %s is held by another replica", job_id)
        return record.status
    try:
        record = await asyncio.to_thread(store.get, job_id)
        if not record.status.finished:
            record = await _start(store, record, lease, policy, run)
        if record.status.finished and record.callback_pending and deliver is not None:
            record = await deliver(record, lease)
        return record.status
    finally:
        await asyncio.to_thread(lease.release)


def _done(record: JobRecord) -> bool:
    """Nothing left to do for this job: finished, and no callback owed."""
    return record.status.finished and not record.callback_pending


async def _start(
    store: JobStore, record: JobRecord, lease: JobLease, policy: RecoveryPolicy, run: ClaimedRun
) -> JobRecord:
    job_id = record.job_id
    if await asyncio.to_thread(store.cancel_requested, job_id):
        await _close(store, record, JobStatus.CANCELLED, None)
    elif record.attempts >= policy.max_attempts:
        log.error("job %s abandoned after %d attempts", job_id, record.attempts)
        error = JobAbandoned(
            f"The job was interrupted {record.attempts} times; giving up.",
            details={"attempts": record.attempts},
        )
        await _close(store, record, JobStatus.FAILED, error.to_dict())
    else:
        if record.attempts:
            log.warning("job %s: starting attempt %d", job_id, record.attempts + 1)
        record = await run(record, lease)
    return record


async def _close(
    store: JobStore, record: JobRecord, status: JobStatus, error: dict[str, Any] | None
) -> None:
    if status is JobStatus.CANCELLED:
        await asyncio.to_thread(store.delete_outputs, record.job_id)
        record.outputs, record.archive = [], None
    record.status, record.error, record.finished_at = status, error, time.time()
    await asyncio.to_thread(store.save, record)
