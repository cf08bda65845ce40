"""JobCoordinator: owns every job from ``queued`` to its final record, on CPU.

It decodes, plans and encodes; model work goes to DemucsWorker (windows of a track,
spread over all replicas, ``max_inflight_batches`` at a time) and to the Transcriber
(streamed segments). GPU replicas never decode, encode or upload.
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
from deployments.clients import TranscriberClient
from deployments.metrics import JobMeter, MeteredStorage
from deployments.resources import set_torch_threads
from pipelines.jobs import JobRecord, JobStore
from pipelines.jobs.inputs import FileBody, run_file_job
from pipelines.jobs.kinds import job_body, separation_model_of
from pipelines.jobs.separation import SeparationEngine
from pipelines.separation import Separator, load_model
from pipelines.storage import open_storage

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
        self._jobs = JobStore(MeteredStorage(open_storage(self._settings)))
        self._meter = JobMeter()
        self._separators: dict[str, Separator] = {}
        self._loading = asyncio.Lock()

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
        """Carry the job to a final state and return that state."""
        record = await asyncio.to_thread(self._jobs.get, job_id)
        if record.status.finished:
            return record.status.value
        body = await self._body(record)
        with self._meter.holding(record.kind):
            await run_file_job(
                self._jobs,
                record,
                self._args.limits,
                body,
                allow_private_urls=self._settings.allow_private_urls,
            )
        self._meter.finished(record)
        log.info("job %s (%s) %s", job_id, record.kind, record.status.value)
        return record.status.value

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

    async def _forward(self, model: str, sub_model: int, batch: np.ndarray) -> np.ndarray:
        handle = self._worker.options(multiplexed_model_id=model)
        result: np.ndarray = await handle.forward.remote(sub_model, batch)
        return result
