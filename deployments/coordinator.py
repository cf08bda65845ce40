"""JobCoordinator: owns every job from ``queued`` to its final record, on CPU.

It decodes, plans and encodes; model work goes to DemucsWorker (windows of a track,
spread over all replicas, ``max_inflight_batches`` at a time) and to the Transcriber
(streamed segments). GPU replicas never decode, encode or upload.

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
from pipelines.jobs import JobRecord, JobStore
from pipelines.jobs.inputs import FileBody, run_file_job
from pipelines.jobs.kinds import job_body, separation_model_of
from pipelines.jobs.lease import JobLease
from pipelines.jobs.recovery import RecoveryPolicy, run_exclusively
from pipelines.jobs.runner import JobContext
from pipelines.jobs.separation import SeparationEngine
from pipelines.separation import BatchOutput, Separator, load_model
from pipelines.storage import open_storage
from pipelines.storage.retrying import RetryingStorage

log = logging.getLogger(__name__)


class JobCoordinator:
    """Runs separation, transcription and lyrics jobs end to end."""

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
        self._jobs = JobStore(RetryingStorage(storage, self._settings.storage_retry_seconds))
        self._meter = JobMeter()
        self._separators: dict[str, Separator] = {}
        self._loading = asyncio.Lock()
        self._owner = replica_name()
        self._policy = RecoveryPolicy(args.jobs.stale_after_seconds, args.jobs.max_attempts)
        self._maintenance = job_maintenance(self._jobs, args.jobs)
        with contextlib.suppress(RuntimeError):  # no event loop: started by the first call
            self._maintenance.start()

    async def _separator(self, name: str) -> Separator:
        """Model structure for planning (its weights stay unused here); loaded once."""
        async with self._loading:
            if name not in self._separators:
                repo = self._args.separation.model_repo
                path = Path(repo) if repo else None
                self._separators[name] = await asyncio.to_thread(load_model, name, path)
            return self._separators[name]

    async def models(self) -> dict[str, dict[str, Any]]:
        """Info of every enabled separation model (each loaded once)."""
        infos = {}
        for name in self._args.separation.models:
            infos[name] = (await self._separator(name)).info() | {"loaded": True}
        return infos

    async def run(self, job_id: str) -> str:
        """Carry the job to a final state and return that state.

        When another replica holds the job (its lease), return its current state at once.
        """
        self._maintenance.start()
        status = await run_exclusively(
            self._jobs, job_id, self._owner, self._policy, self._run_claimed
        )
        return status.value

    async def _run_claimed(self, record: JobRecord, lease: JobLease) -> JobRecord:
        with self._meter.holding(record.kind):
            await run_file_job(
                self._jobs,
                record,
                self._args.limits,
                partial(self._run_body, record),
                allow_private_urls=self._settings.allow_private_urls,
                lease=lease,
                heartbeat_seconds=self._policy.heartbeat,
            )
        self._meter.finished(record)
        log.info("job %s (%s) %s", record.job_id, record.kind, record.status.value)
        return record

    async def _run_body(self, record: JobRecord, ctx: JobContext, source: Path) -> None:
        # Built inside the job, so a model that fails to load fails the job, not the call.
        body = await self._body(record)
        await body(ctx, source)

    async def _body(self, record: JobRecord) -> FileBody:
        model = separation_model_of(record)
        engine = await self._engine(model) if model else None
        stream_for = lambda name: partial(self._transcriber.stream, name)  # noqa: E731
        return job_body(record, engine, stream_for, self._args.limits.max_audio_seconds)

    async def _engine(self, model: str) -> SeparationEngine:
        return SeparationEngine(
            separator=await self._separator(model),
            run_batch=partial(self._forward, model),
            batch_size=self._args.separation.window_batch_size,
            max_inflight=self._args.separation.max_inflight_batches,
        )

    async def _forward(self, model: str, sub_model: int, batch: np.ndarray) -> BatchOutput:
        handle = self._worker.options(multiplexed_model_id=model)

        async def call() -> BatchOutput:
            result: BatchOutput = await handle.forward.remote(sub_model, batch)
            return result

        return await retry_on_replica_death(call, what=f"DemucsWorker.forward ({model})")
