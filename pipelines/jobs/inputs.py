"""Bring a job's input to a local file, wherever the client put it."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pipelines.errors import InvalidRequest
from pipelines.jobs.lease import JobLease
from pipelines.jobs.records import JobRecord, JobStore
from pipelines.jobs.runner import HEARTBEAT_SECONDS, JobContext, run_job
from pipelines.storage import Storage

FileBody = Callable[[JobContext, Path], Awaitable[None]]


INPUT_FILE = "input"
"""The input's local name inside the job folder, whatever the client called it."""


def materialise_input(storage: Storage, source: dict[str, Any], folder: Path) -> Path:
    """The job's stored input copied to ``folder/input``.

    The ingress stored and probed it before accepting the job (any input form ends
    as a stored key), so the job only copies it; the record's file name is only a
    label and never becomes a path.
    """
    key = source.get("key")
    if not isinstance(key, str):
        raise InvalidRequest("The job's input is not in storage.", details={"input": source})
    target = folder / INPUT_FILE
    if target.resolve().parent != folder.resolve():
        raise InvalidRequest("The job's input path leaves its folder.")
    storage.download_to(key, target)
    return target


async def run_file_job(
    store: JobStore,
    record: JobRecord,
    body: FileBody,
    *,
    lease: JobLease | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> JobRecord:
    """Run ``body`` on the job's input as a local file; the record ends final (see ``run_job``)."""
    with tempfile.TemporaryDirectory(prefix="stemscribe-") as folder:

        async def job(ctx: JobContext) -> None:
            source = await asyncio.to_thread(
                materialise_input, ctx.storage, record.input, Path(folder)
            )
            await body(ctx, source)

        return await run_job(store, record, job, lease=lease, heartbeat_seconds=heartbeat_seconds)
