"""The lifecycle every job kind shares: running, progress, heartbeat, cancel, finish.

Outputs are written before the record flips to ``succeeded``, so a client that
sees ``succeeded`` can always download every file listed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pipelines.errors import JobCancelled, StemscribeError, StorageUnavailable
from pipelines.jobs.context import HEARTBEAT_SECONDS, JobContext
from pipelines.jobs.lease import JobLease, LeaseLost
from pipelines.jobs.records import JobRecord, JobStatus, JobStore

log = logging.getLogger(__name__)

FINAL_SAVE_TRIES = 3

__all__ = ["HEARTBEAT_SECONDS", "JobBody", "JobContext", "run_job"]


JobBody = Callable[[JobContext], Awaitable[None]]


async def run_job(
    store: JobStore,
    record: JobRecord,
    body: JobBody,
    *,
    lease: JobLease | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> JobRecord:
    """Carry ``record`` to a final state; never raises for the job's own failures.

    With a ``lease`` every record write first renews it (at most every
    ``heartbeat_seconds``); once another replica has taken the job over, the body
    stops at its next write and nothing more is written. A job is always run from
    the start: outputs of an interrupted attempt are replaced.
    """
    ctx = JobContext(store, record, lease=lease, renew_interval=heartbeat_seconds)
    record.status = JobStatus.RUNNING
    record.started_at = time.time()
    record.finished_at = None
    record.attempts += 1
    record.progress = 0.0
    record.error = None
    record.outputs, record.archive = [], None
    record.timings = {}
    await ctx.save()
    stop = asyncio.Event()
    beat = asyncio.create_task(_heartbeat(ctx, stop, heartbeat_seconds))
    try:
        await body(ctx)
        await ctx.check_cancel(force=True)  # a cancel asked for before the end always wins
        _finish(record, JobStatus.SUCCEEDED)
        record.progress = 1.0
    except LeaseLost:
        log.warning("job %s was taken over by another replica; stopping", record.job_id)
        return record
    except JobCancelled:
        await asyncio.to_thread(store.delete_outputs, record.job_id)
        record.outputs, record.archive = [], None
        _finish(record, JobStatus.CANCELLED)
    except StemscribeError as exc:
        _finish(record, JobStatus.FAILED, exc.to_dict())
    except Exception:
        log.exception("job %s failed", record.job_id)
        error = {"code": "internal_error", "message": "The job failed unexpectedly.", "details": {}}
        _finish(record, JobStatus.FAILED, error)
    finally:
        stop.set()
        await beat  # a heartbeat write in flight must land before the final one
    await _save_final(ctx)
    return record


async def _save_final(ctx: JobContext) -> None:
    """The final record, retried longest: without it the job would run again.

    Each try is a full storage retry budget. If storage stays away for all of them the
    record stays ``running`` with a stale heartbeat, and the reaper takes the job up
    again once storage is back.
    """
    for attempt in range(1, FINAL_SAVE_TRIES + 1):
        try:
            await ctx.save(renew=True)
            return
        except LeaseLost:
            log.warning("job %s was taken over before its final record", ctx.job_id)
            return
        except StorageUnavailable:
            if attempt == FINAL_SAVE_TRIES:
                raise
            log.warning("job %s: final record not written yet (try %d)", ctx.job_id, attempt)


def _finish(record: JobRecord, status: JobStatus, error: dict[str, Any] | None = None) -> None:
    record.status = status
    record.finished_at = time.time()
    record.error = error


async def _heartbeat(ctx: JobContext, stop: asyncio.Event, interval: float) -> None:
    """Keeps ``heartbeat_at`` (and the lease) fresh during long silent steps (decode, encode)."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            if time.time() - (ctx.record.heartbeat_at or 0) < interval:
                continue
            try:
                await ctx.save()
            except LeaseLost:
                return  # the body stops at its own next write
            except StorageUnavailable as exc:
                log.warning("job %s: heartbeat not written (%s)", ctx.job_id, exc)
