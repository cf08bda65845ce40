"""SeparationCoordinator: runs separation jobs end to end on CPU, fanning windows out.

One track is spread over every DemucsWorker replica: its windows are independent
calls, kept ``max_inflight_batches`` at a time.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ray.serve.handle import DeploymentHandle

from config import AppArgs, Settings
from deployments.resources import set_torch_threads
from pipelines.jobs import JobStore
from pipelines.jobs.separation import SeparationEngine, run_separation_job
from pipelines.separation import Separator, load_model
from pipelines.storage import open_storage

log = logging.getLogger(__name__)


class SeparationCoordinator:
    """Owns a separation job from queued to its final record."""

    def __init__(
        self, worker: DeploymentHandle, args: AppArgs, settings: Settings | None = None
    ) -> None:
        set_torch_threads(args.coordinator.compute_threads)
        self._worker = worker
        self._args = args
        self._settings = settings or Settings()
        self._storage = open_storage(self._settings)
        self._jobs = JobStore(self._storage)
        self._separators: dict[str, Separator] = {}
        self._loading = asyncio.Lock()

    async def _separator(self, name: str) -> Separator:
        """Model structure for planning (weights stay unused here); loaded once."""
        async with self._loading:
            if name not in self._separators:
                repo = self._args.separation.model_repo
                path = Path(repo) if repo else None
                self._separators[name] = await asyncio.to_thread(load_model, name, path)
            return self._separators[name]

    async def models(self) -> dict[str, dict[str, Any]]:
        """Info of every enabled model (loads each once)."""
        infos = {}
        for name in self._args.separation.models:
            infos[name] = (await self._separator(name)).info() | {"loaded": True}
        return infos

    async def run(self, job_id: str) -> str:
        """Carry the job to a final state and return it."""
        record = await asyncio.to_thread(self._jobs.get, job_id)
        if record.status.finished:
            return record.status.value
        model = str(record.params["model"])
        engine = SeparationEngine(
            separator=await self._separator(model),
            run_batch=partial(self._forward, model),
            batch_size=self._args.separation.window_batch_size,
            max_inflight=self._args.separation.max_inflight_batches,
        )
        await run_separation_job(
            self._jobs,
            record,
            engine,
            self._args.limits,
            allow_private_urls=self._settings.allow_private_urls,
        )
        log.info("job %s %s", job_id, record.status.value)
        return record.status.value

    async def _forward(self, model: str, sub_model: int, batch: np.ndarray) -> np.ndarray:
        handle = self._worker.options(multiplexed_model_id=model)
        result: np.ndarray = await handle.forward.remote(sub_model, batch)
        return result
