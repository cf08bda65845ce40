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

from ray.serve.handle import DeploymentHandle

from config import AppArgs, Settings
from deployments.clients import TranscriberClient
from deployments.metrics import JobMeter, count_storage_error
from deployments.recovery import job_maintenance, replica_name
from deployments.resources import set_torch_threads
from deployments.retry import retry_on_replica_death
from pipelines.errors import ModelLoading, ModelUnavailable
from pipelines.jobs import JobStore
from pipelines.jobs.cache import ResultCache
from pipelines.jobs.delivery import callback_delivery
from pipelines.jobs.recovery import RecoveryPolicy
from pipelines.jobs.runner import JobRunner
from pipelines.jobs.scratch import ScratchSpace
from pipelines.jobs.separation import SeparationEngine
from pipelines.jobs.transcription import SegmentStream
from pipelines.model_catalog import ModelCatalog
from pipelines.separation import BatchOutput, Separator, WindowBatch, load_model
from pipelines.storage import open_storage
from pipelines.storage.retrying import RetryingStorage

log = logging.getLogger(__name__)

MODEL_WAIT_SECONDS = 20.0
"""How long a request waits for its separation model to load before it is told
``model_loading`` (503, retry): weights can take minutes to download."""


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
        jobs = JobStore(
            RetryingStorage(
                open_storage(self._settings),
                self._settings.storage_retry_seconds,
                on_failure=count_storage_error,
            )
        )
        # Structure for planning; loading it also fetches the weights into the local
        # cache the workers load from. In the background: a start never waits on a hub.
        self._separators: ModelCatalog[Separator] = ModelCatalog(self._load_separator)
        scratch = ScratchSpace(
            self._settings.scratch_dir, int(self._settings.scratch_reserve_mb * 1024 * 1024)
        )
        scratch.sweep()  # folders a crashed replica on this node left behind
        cache = ResultCache(jobs, args.jobs.retention_seconds)
        self._runner = JobRunner(
            jobs,
            self,
            scratch,
            args.limits,
            owner=replica_name(),
            policy=RecoveryPolicy(args.jobs.stale_after_seconds, args.jobs.max_attempts),
            observer=JobMeter(),
            callbacks=callback_delivery(self._settings, args.jobs),
            cache=cache,
        )
        self._maintenance = job_maintenance(
            jobs, args.jobs, also_sweep=[scratch.sweep, cache.expire]
        )
        with contextlib.suppress(RuntimeError):  # no event loop: started by the first call
            self._start_background()

    def _start_background(self) -> None:
        self._maintenance.start()
        self._separators.start(self._args.separation.default_model)

    async def run(self, job_id: str) -> str:
        """Carry the job to a final state and return that state.

        When another replica holds the job (its lease), return its current state at once.
        """
        self._start_background()
        return (await self._runner.run(job_id)).value

    async def models(self, wait_for: str | None = None) -> dict[str, dict[str, Any]]:
        """Every enabled separation model: its info once loaded, else its state.

        ``wait_for``: an enabled model a request is about to use; its load is waited
        for (at most ``MODEL_WAIT_SECONDS``). Its state tells the caller whether it can
        be used: a failure is data here, not an error logged with a trace per request.
        """
        self._start_background()
        enabled = self._args.separation.models
        if wait_for in enabled:
            with contextlib.suppress(ModelUnavailable, ModelLoading):
                await self._separators.get(wait_for, wait=MODEL_WAIT_SECONDS)
        states = self._separators.describe(enabled)
        return {name: self._model_info(name, states[name]) for name in enabled}

    def _model_info(self, name: str, state: dict[str, Any]) -> dict[str, Any]:
        separator = self._separators.peek(name)
        if separator is None:
            return {"name": name, "loaded": False, **state}
        return separator.info() | {"loaded": True, **state}

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

    async def _load_separator(self, name: str) -> Separator:
        repo = self._args.separation.model_repo
        return await asyncio.to_thread(load_model, name, Path(repo) if repo else None)

    async def _separator(self, name: str) -> Separator:
        """Model structure for planning (its weights stay unused here); loaded once."""
        return await self._separators.get(name)

    async def _forward(self, model: str, batch: WindowBatch) -> BatchOutput:
        handle = self._worker.options(multiplexed_model_id=model)

        async def call() -> BatchOutput:
            result: BatchOutput = await handle.forward.remote(batch)
            return result

        return await retry_on_replica_death(call, what=f"DemucsWorker.forward ({model})")
