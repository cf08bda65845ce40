"""Transcriber: faster-whisper models (LRU-multiplexed by name), stateless calls only.

Live sessions keep their state in the Ingress and send windows here; jobs send
whole files. Either way a call carries everything it needs, so replicas autoscale.

Up to ``workers`` computations run at once (CTranslate2 workers). A file
transcription runs faster-whisper in a thread of its own, and each of its model
computations (encoder, decoder, alignment) takes a slot only while it computes:
segments already decoded, and those travelling back, hold nothing, so concurrent
requests finish as their own windows are done. Live windows of all sessions are
batched (`decode_batch`) and take the live lane: when a slot frees, they go before
waiting file work, so a file job delays a live window by at most one of its
computations on a 30 s window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any, TypeVar

import numpy as np
import ray
from faster_whisper import WhisperModel
from ray import serve

from config import TranscriptionArgs
from deployments.health import ModelHealth
from deployments.resources import gpu_assigned
from pipelines.errors import UnknownModel
from pipelines.model_catalog import ModelCatalog, ModelState
from pipelines.probes import probe_whisper
from pipelines.scheduling import Lane, MicroBatcher
from pipelines.streaming import DecodedSegment, DecodeRequest
from pipelines.streaming.batch import decode_batch
from pipelines.transcription import (
    TranscribeOptions,
    load_whisper,
    start_transcription,
    with_held_calls,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

FILE_THREADS = 64
"""File transcriptions in progress at once per replica (more wait for a thread); each
thread mostly waits for a slot, so this is far above the replica's request limit."""


class Transcriber:
    """Runs Whisper on audio it is given (16 kHz mono float32)."""

    def __init__(self, args: TranscriptionArgs, threads: int) -> None:
        self._args = args
        self._threads = threads
        self.device = "auto" if gpu_assigned() else "cpu"
        self._health = ModelHealth(probe_whisper, slots=args.workers)
        self._file_threads = ThreadPoolExecutor(FILE_THREADS, thread_name_prefix="file")
        self._live: MicroBatcher[str, DecodeRequest, list[DecodedSegment]] = MicroBatcher(
            self._decode_batch,
            max_batch=args.live_batch_size,
            wait_s=args.live_batch_wait_ms / 1000,
        )
        # Loads run in the background with their outcome recorded: a hub that cannot be
        # reached fails the requests for that model at once, not each after a timeout.
        # Serve's multiplexing keeps the loaded models, so the catalogue hands each out once.
        self._catalog: ModelCatalog[WhisperModel] = ModelCatalog(self._load, keep=False)

        async def load(name: str) -> WhisperModel:
            if name not in args.models:
                raise UnknownModel(f"Unknown transcription model {name!r}.")
            return await self._catalog.get(name)

        self._models = serve.multiplexed(max_num_models_per_replica=args.max_models_per_replica)(
            load
        )
        with contextlib.suppress(RuntimeError):  # no event loop yet: the first call preloads
            self._catalog.start(args.default_model)

    async def _load(self, name: str) -> WhisperModel:
        return await asyncio.to_thread(
            load_whisper,
            self._args.models[name],
            device=self.device,
            compute_type=self._args.compute_type,
            cpu_threads=self._threads,
            num_workers=self._args.workers,
        )

    async def model_states(self) -> dict[str, dict[str, Any]]:
        """Each enabled model's state on this replica (the default one is preloaded)."""
        if self._catalog.state(self._args.default_model) == ModelState.NOT_LOADED:
            self._catalog.start(self._args.default_model)
        return self._catalog.describe(list(self._args.models))

    async def _model(self) -> WhisperModel:
        return await self._models(serve.get_multiplexed_model_id())

    async def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream ``{"meta": ...}`` first, then one ``{"segment": ...}`` per segment."""
        model = await self._model()
        held = with_held_calls(model, self._health.slot_for_threads(model))
        options = replace(options, batch_size=self._args.file_batch_size)
        meta, segments = await self._in_file_thread(start_transcription, held, audio, options)
        yield {"meta": meta}
        # Each held computation records progress as it takes and gives back its slot.
        while (segment := await self._in_file_thread(next, segments, None)) is not None:
            yield {"segment": asdict(segment)}

    async def _in_file_thread(self, call: Callable[..., T], *args: Any) -> T:
        """File work waits for slots in threads of its own, never in the pool that live
        batches and model loads use."""
        return await asyncio.get_running_loop().run_in_executor(self._file_threads, call, *args)

    async def decode(self, request: DecodeRequest) -> list[DecodedSegment]:
        """One window of a live session (LocalAgreement runs in the Ingress), decoded
        in a batch with the windows of other sessions waiting for the same model."""
        return await self._live.submit(serve.get_multiplexed_model_id(), request)

    async def _decode_batch(
        self, name: str, requests: list[DecodeRequest]
    ) -> list[list[DecodedSegment]]:
        model = await self._models(name)
        async with self._health.exclusive(model, Lane.LIVE):
            return await asyncio.to_thread(decode_batch, model, requests)

    async def check_health(self) -> None:
        """Serve's health check: the last model used still encodes on its device."""
        await self._health.check()

    def stats(self) -> dict[str, Any]:
        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "threads": self._threads,
            "openmp_threads": int(os.environ.get("OMP_NUM_THREADS", "0")),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
            "workers": self._args.workers,
            "live_batch_sizes": self._live.batch_sizes[-200:],
        }
