"""The lifecycle every job kind shares: running, progress, heartbeat, cancel, finish.

Outputs are written before the record flips to ``succeeded``, so a client that
sees ``succeeded`` can always download every file listed.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pipelines.errors import JobCancelled, StemscribeError, StorageUnavailable
from pipelines.jobs.lease import JobLease, LeaseLost
from pipelines.jobs.records import JobRecord, JobStatus, JobStore, OutputFile, output_key

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
FINAL_SAVE_TRIES = 3


class JobContext:
    """Handed to a job body: report progress, write outputs, notice cancellation."""

    def __init__(
        self,
        store: JobStore,
        record: JobRecord,
        *,
        save_interval: float = 0.5,
        cancel_interval: float = 1.0,
        lease: JobLease | None = None,
        renew_interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.store = store
        self.storage = store.storage
        self.record = record
        self.lease = lease
        self._save_interval = save_interval
        self._cancel_interval = cancel_interval
        self._renew_interval = renew_interval
        self._last_save = 0.0
        self._last_renewal = time.monotonic()
        self._last_cancel_check = 0.0
        self._save_lock = asyncio.Lock()
        self._span = (0.0, 1.0)

    @property
    def job_id(self) -> str:
        return self.record.job_id

    async def save(self, *, renew: bool = False) -> None:
        """Write the record (renewing the lease first when due); ``LeaseLost`` if taken over."""
        async with self._save_lock:  # one write at a time, so records never go backwards
            await self._renew_lease(force=renew)
            self.record.heartbeat_at = time.time()
            self._last_save = time.monotonic()
            await asyncio.to_thread(self.store.save, self.record)

    async def _renew_lease(self, *, force: bool) -> None:
        if self.lease is None:
            return
        if self.lease.lost:
            raise LeaseLost(f"job {self.job_id}: lease lost")
        if force or time.monotonic() - self._last_renewal >= self._renew_interval:
            await asyncio.to_thread(self.lease.renew)
            self._last_renewal = time.monotonic()

    @contextmanager
    def stage(self, start: float, end: float) -> Iterator[None]:
        """Map the progress a stage reports (0..1) onto [start, end] of the whole job."""
        outer = self._span
        self._span = (start, end)
        try:
            yield
        finally:
            self._span = outer

    async def progress(self, value: float) -> None:
        """Record progress in [0, 1]; saved at most every ``save_interval`` seconds."""
        low, high = self._span
        value = low + (high - low) * value
        self.record.progress = min(1.0, max(self.record.progress, value))
        await self.check_cancel()
        if time.monotonic() - self._last_save >= self._save_interval:
            await self.save()

    async def check_cancel(self, force: bool = False) -> None:
        """Raise ``JobCancelled`` once a DELETE asked for it (polled, throttled unless forced)."""
        now = time.monotonic()
        if not force and now - self._last_cancel_check < self._cancel_interval:
            return
        self._last_cancel_check = now
        if await asyncio.to_thread(self.store.cancel_requested, self.job_id):
            raise JobCancelled("The job was cancelled.")

    async def write_output(
        self, name: str, filename: str, data: bytes, content_type: str
    ) -> OutputFile:
        key = output_key(self.job_id, filename)
        await asyncio.to_thread(self.storage.put, key, data, content_type)
        return OutputFile(name, key, len(data), content_type, filename)

    async def write_archive(self, files: dict[str, bytes], filename: str) -> OutputFile:
        """A ZIP of ``files``, stored uncompressed (see ``_zip``)."""
        data = await asyncio.to_thread(_zip, files)
        return await self.write_output("archive", filename, data, "application/zip")


def _zip(files: dict[str, bytes]) -> bytes:
    # Stored, not deflated: audio barely compresses (a 60 s 4-stem WAV set shrank 6 %
    # for a second of CPU taken from the model on a small machine).
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


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
