"""Bring a job's input to a local file, wherever the client put it."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from config import LimitsArgs
from pipelines.fetch import fetch_url
from pipelines.jobs.lease import JobLease
from pipelines.jobs.records import JobRecord, JobStore
from pipelines.jobs.runner import HEARTBEAT_SECONDS, JobContext, run_job
from pipelines.storage import Storage

FileBody = Callable[[JobContext, Path], Awaitable[None]]


def materialise_input(
    storage: Storage,
    source: dict[str, Any],
    folder: Path,
    limits: LimitsArgs,
    *,
    allow_private_urls: bool = False,
) -> Path:
    """The input as a file in ``folder``: copied from storage or downloaded from its URL."""
    target = folder / (source.get("filename") or "input")
    if "key" in source:
        storage.download_to(source["key"], target)
    else:
        fetch_url(
            source["url"],
            target,
            max_bytes=int(limits.max_upload_mb * 1024 * 1024),
            timeout=limits.max_url_download_seconds,
            allow_private=allow_private_urls,
        )
    return target


async def run_file_job(
    store: JobStore,
    record: JobRecord,
    limits: LimitsArgs,
    body: FileBody,
    *,
    allow_private_urls: bool = False,
    lease: JobLease | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> JobRecord:
    """Run ``body`` on the job's input as a local file; the record ends final (see ``run_job``)."""
    with tempfile.TemporaryDirectory(prefix="stemscribe-") as folder:

        async def job(ctx: JobContext) -> None:
            source = await asyncio.to_thread(
                materialise_input,
                ctx.storage,
                record.input,
                Path(folder),
                limits,
                allow_private_urls=allow_private_urls,
            )
            await body(ctx, source)

        return await run_job(store, record, job, lease=lease, heartbeat_seconds=heartbeat_seconds)
