"""JobCoordinator: owns every job from ``queued`` to its final record, on CPU.

A thin shell over ``pipelines.jobs.runner.JobRunner``: it supplies the engines (the
DemucsWorker forward pass for windows of a track, spread over all replicas,
``max_inflight_batches`` at a time; the Transcriber's streamed segments), the job store,
scratch disk and metrics. GPU replicas never decode, encode or upload.

Every replica also runs the reaper and the sweeper (``pipelines.jobs.maintenance``);
a job runs only under its lease, so retried calls and the reaper converge on one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from ray.serve.handle import DeploymentHandle

from config import AppArgs, Settings
from deployments.clients import TranscriberClient
from deployments.metrics import JobMeter, MeteredStorage
from deployments.recovery import job_maintenance, replica_name
from deployments.resources import set_torch_threads
from deployments.retry import retry_on_replica_death
from pipelines.jobs import JobStore
from pipelines.jobs.recovery import RecoveryPolicy
from pipelines.jobs.runner import JobRunner
from pipelines.jobs.scratch import ScratchSpace
from pipelines.jobs.separation import SeparationEngine
from pipelines.jobs.transcription import SegmentStream
from pipelines.separation import BatchOutput, Separator, load_model
from pipelines.storage import open_storage
from pipelines.storage.retrying import RetryingStorage

log = logging.getLogger(__name__)


class JobCoordinator:
    """Runs separation, transcription and lyrics jobs end to end (``JobRunner``)."""

    def __init__(
        self,
        worker: DeploymentHandle,
        transcriber: DeploymentHandle,
        args: AppArgs,
        settings: Settings | None = None,
    ) -> None:
        set_torch_threads(args.coordinator.compute_threads)
        self._worker = worker
        self._transcriber = TranscriberClient(transcriber, args.transcription)
        self._args = args
        self._settings = settings or Settings()
        storage = MeteredStorage(open_storage(self._settings))
        jobs = JobStore(RetryingStorage(storage, self._settings.storage_retry_seconds))
        self._separators: dict[str, Separator] = {}
        self._loading = asyncio.Lock()
        scratch = ScratchSpace(
            self._settings.scratch_dir, int(self._settings.scratch_reserve_mb * 1024 * 1024)
        )
        scratch.sweep()  # folders a crashed replica on this node left behind
        self._runner = JobRunner(
            jobs,
            self,
            scratch,
            args.limits,
            owner=replica_name(),
            policy=RecoveryPolicy(args.jobs.stale_after_seconds, args.jobs.max_attempts),
            allow_private_urls=self._settings.allow_private_urls,
            observer=JobMeter(),
        )
        self._maintenance = job_maintenance(jobs, args.jobs, also_sweep=[scratch.sweep])
        with contextlib.suppress(RuntimeError):  # no event loop: started by the first call
            self._maintenance.start()

    async def run(self, job_id: str) -> str:
        """Carry the job to a final state and return that state.

        When another replica holds the job (its lease), return its current state at once.
        """
        self._maintenance.start()
        return (await self._runner.run(job_id)).value

    async def models(self) -> dict[str, dict[str, Any]]:
        """Info of every enabled separation model (each loaded once)."""
        infos = {}
        for name in self._args.separation.models:
            infos[name] = (await self._separator(name)).info() | {"loaded": True}
        return infos

    # JobEngines: what the runner's jobs run on.

    async def separation(self, model: str) -> SeparationEngine:
        return SeparationEngine(
            separator=await self._separator(model),
            run_batch=partial(self._forward, model),
            batch_size=self._args.separation.window_batch_size,
            max_inflight=self._args.separation.max_inflight_batches,
        )

    def transcription(self, model: str) -> SegmentStream:
        return partial(self._transcriber.stream, model)

    async def _separator(self, name: str) -> Separator:
        """Model structure for planning (its weights stay unused here); loaded once."""
        async with self._loading:
            if name not in self._separators:
                repo = self._args.separation.model_repo
                path = Path(repo) if repo else None
                self._separators[name] = await asyncio.to_thread(load_model, name, path)
            return self._separators[name]

    async def _forward(self, model: str, sub_model: int, batch: np.ndarray) -> BatchOutput:
        handle = self._worker.options(multiplexed_model_id=model)

        async def call() -> BatchOutput:
            result: BatchOutput = await handle.forward.remote(sub_model, batch)
            return result

        return await retry_on_replica_death(call, what=f"DemucsWorker.forward ({model})")
