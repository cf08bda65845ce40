"""The background loop of every job-running replica: the reaper and the sweeper.

The reaper hands each stale job back to ``resubmit`` (in the service, a call through
the coordinators' own DeploymentHandle, so the retried job is load-balanced and
counted against ``max_ongoing_requests`` like any other); the job's lease decides
who runs it. The sweeper deletes what is past retention. Passes are jittered so
replicas do not all list the store at the same instant.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pipelines.jobs.janitor import Janitor

log = logging.getLogger(__name__)

Resubmit = Callable[[str], Awaitable[Any]]
Backlog = Callable[[dict[str, int]], object]
"""Receives the queued jobs by kind after each reaper pass (the service publishes a gauge)."""


class Maintenance:
    """Reaps every ``reap_interval`` seconds and sweeps every ``sweep_interval``.

    ``also_sweep``: more clean-ups run with each sweep, given the current time;
    ``on_backlog``: told the queued jobs by kind after each reaper pass.
    """

    def __init__(
        self,
        janitor: Janitor,
        resubmit: Resubmit,
        *,
        reap_interval: float,
        sweep_interval: float,
        also_sweep: Sequence[Callable[[float], object]] = (),
        on_backlog: Backlog | None = None,
    ) -> None:
        self._janitor = janitor
        self._resubmit = resubmit
        self._also_sweep = also_sweep
        self._on_backlog = on_backlog
        self._reap_interval = reap_interval
        self._sweep_interval = sweep_interval
        self._next_sweep = 0.0
        self._retrying: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop on the running event loop (once; later calls do nothing)."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._reap_interval * random.uniform(0.8, 1.2))
            try:
                await self.run_once()
            except Exception as exc:  # storage away, or a bug: the next pass tries again
                log.warning("job maintenance pass failed: %s", exc)

    async def run_once(self) -> None:
        """One reaper pass, and a sweep when one is due."""
        for job_id in await asyncio.to_thread(self._janitor.stale_jobs, time.time()):
            if job_id not in self._retrying:
                log.warning("job %s looks interrupted; handing it out again", job_id)
                task = asyncio.create_task(self._retry(job_id))
                self._retrying[job_id] = task
        if self._on_backlog is not None:
            self._on_backlog(self._janitor.queued)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self._sweep_interval
            for sweep in (self._janitor.sweep, *self._also_sweep):
                await asyncio.to_thread(sweep, time.time())

    async def _retry(self, job_id: str) -> None:
        try:
            status = await self._resubmit(job_id)
            log.info("job %s after its retry: %s", job_id, status)
        except Exception as exc:
            log.warning("job %s: retry call failed: %s", job_id, exc)
        finally:
            del self._retrying[job_id]
