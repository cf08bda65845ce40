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

from config import AppArgs
from pipelines.jobs import JobRecord, JobStore
from pipelines.jobs.inputs import FileBody, run_file_job
from pipelines.jobs.kinds import job_body, separation_model_of
from pipelines.jobs.separation import SeparationEngine
from pipelines.jobs.transcription import collect_transcript
from pipelines.separation import BatchOutput, Separator, timed_batch
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

    def resolve(self, name: str | None) -> str:
        return pick_model(name, list(self.models), self.default)

    async def stream(
        self, model: str, audio: np.ndarray, options: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        opts = TranscribeOptions(**options)
        meta, segments = await asyncio.to_thread(
            start_transcription, self.models[model], audio, opts
        )
        yield {"meta": meta}
        while (segment := await asyncio.to_thread(next, segments, None)) is not None:
            yield {"segment": asdict(segment)}

    async def transcribe(
        self, model: str, audio: np.ndarray, options: dict[str, Any]
    ) -> Transcript:
        return await collect_transcript(self.stream(model, audio, options))

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

    async def submit(self, kind: str, job_id: str) -> None:
        self.submitted.append(job_id)
        record = await asyncio.to_thread(self.jobs.get, job_id)
        job = run_file_job(self.jobs, record, self.args.limits, self._body(record))
        self.tasks.append(asyncio.create_task(job))

    def _engine(self, model: str) -> SeparationEngine:
        separator = self.separators[model]

        async def forward(sub_model: int, batch: np.ndarray) -> BatchOutput:
            await asyncio.to_thread(self.gate.wait)
            return await asyncio.to_thread(timed_batch, separator.models[sub_model], batch)

        return SeparationEngine(separator, forward, batch_size=2, max_inflight=2)

    def _body(self, record: JobRecord) -> FileBody:
        """The same job bodies the JobCoordinator runs."""
        model = separation_model_of(record)
        engine = self._engine(model) if model else None
        stream_for = lambda name: partial(self.transcriber.stream, name)  # noqa: E731
        return job_body(record, engine, stream_for, self.args.limits.max_audio_seconds)

    async def separation_models(self) -> dict[str, dict[str, Any]]:
        return {name: sep.info() | {"loaded": True} for name, sep in self.separators.items()}

    async def drain(self) -> None:
        await asyncio.gather(*self.tasks)
