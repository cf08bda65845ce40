"""In-process stand-ins for the Ray handles, for API tests without a cluster.

The launcher runs the same job code the coordinator runs, with the model forward
pass done in this process instead of on a DemucsWorker replica.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np
from faster_whisper import WhisperModel

from config import AppArgs, Settings
from pipelines.jobs import JobStore
from pipelines.jobs.cache import ResultCache
from pipelines.jobs.delivery import callback_delivery
from pipelines.jobs.runner import JobRunner
from pipelines.jobs.scratch import ScratchSpace
from pipelines.jobs.separation import SeparationEngine
from pipelines.jobs.transcription import SegmentStream, collect_transcript
from pipelines.model_catalog import raise_if_failed, unavailable
from pipelines.separation import BatchOutput, Separator, WindowBatch, timed_batch
from pipelines.streaming import DecodedSegment, DecodeRequest, decode_with_model
from pipelines.transcription import (
    TranscribeOptions,
    Transcript,
    pick_model,
    start_transcription,
)


class InProcessTranscriber:
    """The Transcriber's calls, run on an in-process WhisperModel."""

    def __init__(self, models: dict[str, WhisperModel], default: str) -> None:
        self.models = models
        self.default = default
        self.decodes = 0
        self.failed: dict[str, str] = {}
        """Model name -> why it could not be loaded (as a Transcriber records it)."""

    def resolve(self, name: str | None) -> str:
        return pick_model(name, list(self.models), self.default)

    async def stream(
        self, model: str, audio: np.ndarray, options: TranscribeOptions
    ) -> AsyncIterator[dict[str, Any]]:
        meta, segments = await asyncio.to_thread(
            start_transcription, self.models[model], audio, options
        )
        yield {"meta": meta}
        while (segment := await asyncio.to_thread(next, segments, None)) is not None:
            yield {"segment": asdict(segment)}

    async def transcribe(
        self, model: str, audio: np.ndarray, options: TranscribeOptions
    ) -> Transcript:
        return await collect_transcript(self.stream(model, audio, options))

    async def model_states(self) -> dict[str, dict[str, Any]]:
        failed = {n: {"status": "failed", "error": why} for n, why in self.failed.items()}
        return {name: {"status": "ready"} for name in self.models} | failed

    async def check_available(self, model: str) -> None:
        raise_if_failed(await self.model_states(), model)

    async def decode(self, model: str, request: DecodeRequest) -> list[DecodedSegment]:
        self.decodes += 1
        return await asyncio.to_thread(decode_with_model, self.models[model], request)


class InProcessLauncher:
    """Runs submitted jobs as asyncio tasks of the test's own event loop."""

    def __init__(
        self,
        jobs: JobStore,
        args: AppArgs,
        separators: dict[str, Separator],
        transcriber: InProcessTranscriber,
        scratch: ScratchSpace,
        settings: Settings | None = None,
    ) -> None:
        self.jobs = jobs
        self.args = args
        self.separators = separators
        self.transcriber = transcriber
        self.tasks: list[asyncio.Task[Any]] = []
        self.submitted: list[str] = []
        self.gate = threading.Event()
        """Windows wait for this gate; tests clear it to hold jobs mid-run."""
        self.gate.set()
        self.unavailable: dict[str, str] = {}
        """Separation model -> why it could not be loaded (as the coordinator records it)."""
        self.runner = JobRunner(
            jobs,
            self,
            scratch,
            args.limits,
            callbacks=callback_delivery(settings or Settings(), args.jobs),
            cache=ResultCache(jobs, args.jobs.retention_seconds),
        )

    async def submit(self, kind: str, job_id: str) -> None:
        self.submitted.append(job_id)
        self.tasks.append(asyncio.create_task(self.runner.run(job_id)))

    async def separation(self, model: str) -> SeparationEngine:
        separator = self.separators[model]

        async def forward(batch: WindowBatch) -> BatchOutput:
            await asyncio.to_thread(self.gate.wait)
            return await asyncio.to_thread(
                timed_batch, separator.models[batch.sub_model], batch.windows
            )

        return SeparationEngine(separator, forward, batch_size=2, max_inflight=2)

    def transcription(self, model: str) -> SegmentStream:
        return partial(self.transcriber.stream, model)

    async def separation_models(self, wait_for: str | None = None) -> dict[str, dict[str, Any]]:
        if wait_for in self.unavailable:
            raise unavailable(wait_for, self.unavailable[wait_for])
        return {
            name: sep.info() | {"loaded": True, "status": "ready"}
            for name, sep in self.separators.items()
        }

    async def drain(self) -> None:
        await asyncio.gather(*self.tasks)
