"""In-process stand-ins for the Ray handles, for API tests without a cluster.

The launcher runs the same job code the coordinator runs, with the model forward
pass done in this process instead of on a DemucsWorker replica.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from config import AppArgs
from pipelines.jobs import JobStore
from pipelines.jobs.separation import SeparationEngine, run_separation_job
from pipelines.separation import Separator, run_batch


class InProcessLauncher:
    """Runs submitted jobs as asyncio tasks of the test's own event loop."""

    def __init__(self, jobs: JobStore, args: AppArgs, separators: dict[str, Separator]) -> None:
        self.jobs = jobs
        self.args = args
        self.separators = separators
        self.tasks: list[asyncio.Task[Any]] = []
        self.submitted: list[str] = []
        self.gate = threading.Event()
        """Windows wait for this gate; tests clear it to hold jobs mid-run."""
        self.gate.set()

    async def submit(self, kind: str, job_id: str) -> None:
        self.submitted.append(job_id)
        record = await asyncio.to_thread(self.jobs.get, job_id)
        separator = self.separators[str(record.params["model"])]

        async def forward(sub_model: int, batch: np.ndarray) -> np.ndarray:
            await asyncio.to_thread(self.gate.wait)
            return await asyncio.to_thread(run_batch, separator.models[sub_model], batch)

        engine = SeparationEngine(separator, forward, batch_size=2, max_inflight=2)
        job = run_separation_job(self.jobs, record, engine, self.args.limits)
        self.tasks.append(asyncio.create_task(job))

    async def separation_models(self) -> dict[str, dict[str, Any]]:
        return {name: sep.info() | {"loaded": True} for name, sep in self.separators.items()}

    async def drain(self) -> None:
        await asyncio.gather(*self.tasks)
