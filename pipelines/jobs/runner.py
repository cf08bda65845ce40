"""``JobRunner``: one job from ``queued`` to its final record, whatever its kind.

``run(job_id)`` claims the job's lease (so retried calls and the reaper converge on
one run), gives it a scratch folder, and runs its steps under the shared lifecycle
(``lifecycle.run_job``: heartbeat, cancel, outputs before ``succeeded``). The steps:
fetch the input into the folder, check the scratch disk it needs, run the kind's
pipeline. Models are reached through ``JobEngines``, so the service passes remote
workers and tests pass in-process ones. Once the job is finished, still under the
lease: a success is indexed in the result cache, and the callback is delivered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol

from config import LimitsArgs
from pipelines import audio
from pipelines.errors import StorageUnavailable
from pipelines.jobs.cache import ResultCache
from pipelines.jobs.context import HEARTBEAT_SECONDS, JobContext
from pipelines.jobs.delivery import CallbackDelivery, RetryPolicy, deliver
from pipelines.jobs.inputs import materialise_input
from pipelines.jobs.kinds import JobKind, scratch_cost
from pipelines.jobs.lease import JobLease, LeaseLost
from pipelines.jobs.lifecycle import run_job
from pipelines.jobs.params import SeparationParams
from pipelines.jobs.records import JobRecord, JobStatus, JobStore
from pipelines.jobs.recovery import RecoveryPolicy, run_exclusively
from pipelines.jobs.scratch import JobScratch, ScratchSpace
from pipelines.jobs.separation import SeparationEngine, separate
from pipelines.jobs.transcription import SegmentStream, TranscriptionParams, transcribe_file
from pipelines.lyrics import LyricsParams, lyrics

log = logging.getLogger(__name__)

DEFAULT_POLICY = RecoveryPolicy(stale_after=4 * HEARTBEAT_SECONDS, max_attempts=3)
NO_CALLBACKS = CallbackDelivery(None, RetryPolicy(max_attempts=1, backoff=1.0, max_backoff=1.0))

JobParams = SeparationParams | TranscriptionParams | LyricsParams


class JobEngines(Protocol):
    """The models jobs run on, by name."""

    async def separation(self, model: str) -> SeparationEngine:
        """A Demucs model's shape and forward pass (loaded on first use)."""
        ...

    def transcription(self, model: str) -> SegmentStream:
        """Streamed segments of a Whisper model."""
        ...


class JobObserver(Protocol):
    """Told what a runner holds and how each job it ran ended (metrics)."""

    def holding(self, kind: str) -> AbstractContextManager[None]: ...

    def finished(self, record: JobRecord) -> None: ...


class _Unobserved:
    def holding(self, kind: str) -> AbstractContextManager[None]:
        return nullcontext()

    def finished(self, record: JobRecord) -> None:
        return None


class JobRunner:
    """Runs jobs of every kind on ``engines``, with records in ``store``."""

    def __init__(
        self,
        store: JobStore,
        engines: JobEngines,
        scratch: ScratchSpace,
        limits: LimitsArgs,
        *,
        owner: str | None = None,
        policy: RecoveryPolicy = DEFAULT_POLICY,
        observer: JobObserver | None = None,
        callbacks: CallbackDelivery = NO_CALLBACKS,
        cache: ResultCache | None = None,
    ) -> None:
        self._store = store
        self._engines = engines
        self._scratch = scratch
        self._limits = limits
        self._owner = owner or f"local-{os.getpid()}-{secrets.token_hex(4)}"
        self._policy = policy
        self._observer = observer or _Unobserved()
        self._callbacks = callbacks
        self._cache = cache

    async def run(self, job_id: str) -> JobStatus:
        """Carry the job to a final state and return it; at once, with its current
        state, when another runner holds the job."""
        return await run_exclusively(
            self._store, job_id, self._owner, self._policy, self._run_claimed, self._deliver
        )

    async def _run_claimed(self, record: JobRecord, lease: JobLease) -> JobRecord:
        with self._observer.holding(record.kind), self._scratch.job(record.job_id) as scratch:
            await run_job(
                self._store,
                record,
                lambda ctx: self._steps(ctx, scratch),
                lease=lease,
                heartbeat_seconds=self._policy.heartbeat,
            )
        self._observer.finished(record)
        log.info("job %s (%s) %s", record.job_id, record.kind, record.status.value)
        if self._cache is not None and record.status is JobStatus.SUCCEEDED:
            try:
                await asyncio.to_thread(self._cache.remember, record)
            except StorageUnavailable as exc:  # a missed entry only costs a re-run later
                log.warning("job %s: not indexed in the result cache (%s)", record.job_id, exc)
        return record

    async def _deliver(self, record: JobRecord, lease: JobLease) -> JobRecord:
        heartbeat = self._policy.heartbeat
        ctx = JobContext(self._store, record, lease=lease, renew_interval=heartbeat)
        try:
            await deliver(ctx, self._callbacks, heartbeat)
        except LeaseLost:
            log.warning("job %s: callback taken over by another replica", record.job_id)
        return record

    async def _steps(self, ctx: JobContext, scratch: JobScratch) -> None:
        kind = JobKind.of(ctx.record.kind)
        params = _params(kind, ctx.record)
        source = await self._fetch_input(ctx, scratch.folder)
        engine = await self._separation_engine(params)
        await self._claim_scratch(scratch, source, params, engine)
        max_seconds = self._limits.max_audio_seconds
        if isinstance(params, SeparationParams):
            assert engine is not None
            await separate(ctx, engine, params, source, scratch.folder, max_seconds)
        elif isinstance(params, LyricsParams):
            assert engine is not None
            stream = self._engines.transcription(str(params.model))
            await lyrics(ctx, engine, stream, source, scratch.folder, params, max_seconds)
        else:
            stream = self._engines.transcription(str(params.model))
            await transcribe_file(ctx, stream, source, params, max_seconds, scratch.folder)

    async def _fetch_input(self, ctx: JobContext, folder: Path) -> Path:
        folder = folder / "input"  # apart from the job's own scratch files
        folder.mkdir()
        with ctx.timed("fetch"):
            return await asyncio.to_thread(materialise_input, ctx.storage, ctx.record.input, folder)

    async def _separation_engine(self, params: JobParams) -> SeparationEngine | None:
        # Loaded inside the job, so a model that fails to load fails the job, not the call.
        if isinstance(params, SeparationParams):
            return await self._engines.separation(str(params.model))
        if isinstance(params, LyricsParams):
            return await self._engines.separation(str(params.separation_model))
        return None

    async def _claim_scratch(
        self,
        scratch: JobScratch,
        source: Path,
        params: JobParams,
        engine: SeparationEngine | None,
    ) -> None:
        """Refuse (507) before any work when the scratch disk cannot hold the job."""
        info = await asyncio.to_thread(audio.probe, source)
        sep = engine.separator if engine is not None else None
        cost = scratch_cost(
            params,
            sep.samplerate if sep else 0,
            sep.audio_channels if sep else 0,
            len(sep.sources) if sep else 0,
        )
        scratch.claim(cost.bytes_for(info.duration, 0))


def _params(kind: JobKind, record: JobRecord) -> JobParams:
    if kind is JobKind.SEPARATION:
        return SeparationParams.model_validate(record.params)
    if kind is JobKind.LYRICS:
        return LyricsParams.model_validate(record.params)
    return TranscriptionParams.model_validate(record.params)
