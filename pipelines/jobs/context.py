"""What a job body is handed: progress, cancellation, outputs, and stage timings.

Outputs are written before the record flips to ``succeeded`` (see ``JobRunner``), so
a client that sees ``succeeded`` can always download every file listed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipelines.errors import JobCancelled
from pipelines.jobs.lease import JobLease, LeaseLost
from pipelines.jobs.records import JobRecord, JobStore, OutputFile, output_key

HEARTBEAT_SECONDS = 5.0


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

    async def write_output_file(
        self, name: str, filename: str, path: Path, content_type: str
    ) -> OutputFile:
        """Upload a local file, streamed (multipart on S3): never read whole."""
        key = output_key(self.job_id, filename)

        def upload() -> int:
            with path.open("rb") as file:
                return self.storage.put(key, file, content_type)

        size = await asyncio.to_thread(upload)
        return OutputFile(name, key, size, content_type, filename)

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to the record's ``stage`` timing."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.add_time(stage, time.monotonic() - started)

    def add_time(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to the record's ``stage`` timing (summed over the job)."""
        timings = self.record.timings
        timings[stage] = round(timings.get(stage, 0.0) + seconds, 6)
