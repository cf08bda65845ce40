"""Transcriber: faster-whisper models (LRU-multiplexed by name), stateless calls only.

Live sessions keep their state in the Ingress and send windows here; jobs send
whole files. Either way a call carries everything it needs, so replicas autoscale.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

import numpy as np
import ray
from faster_whisper import WhisperModel
from ray import serve

from config import TranscriptionArgs
from deployments.resources import gpu_assigned
from pipelines.errors import UnknownModel
from pipelines.streaming import DecodedSegment, DecodeRequest, decode_with_model
from pipelines.transcription import TranscribeOptions, load_whisper, start_transcription

log = logging.getLogger(__name__)


class Transcriber:
    """Runs Whisper on audio it is given (16 kHz mono float32)."""

    def __init__(self, args: TranscriptionArgs, threads: int) -> None:
        self._args = args
        self._threads = threads
        self.device = "auto" if gpu_assigned() else "cpu"
        self._lock = asyncio.Lock()

        async def load(name: str) -> WhisperModel:
            if name not in args.models:
                raise UnknownModel(f"Unknown transcription model {name!r}.")
            return await asyncio.to_thread(
                load_whisper,
                args.models[name],
                device=self.device,
                compute_type=args.compute_type,
                cpu_threads=threads,
            )

        self._models = serve.multiplexed(max_num_models_per_replica=args.max_models_per_replica)(
            load
        )

    async def _model(self) -> WhisperModel:
        return await self._models(serve.get_multiplexed_model_id())

    async def transcribe(
        self, audio: np.ndarray, options: TranscribeOptions
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream ``{"meta": ...}`` first, then one ``{"segment": ...}`` per segment."""
        model = await self._model()
        async with self._lock:  # one decode at a time: the model is the bottleneck
            meta, segments = await asyncio.to_thread(start_transcription, model, audio, options)
            yield {"meta": meta}
            while (segment := await asyncio.to_thread(next, segments, None)) is not None:
                yield {"segment": asdict(segment)}

    async def decode(self, request: DecodeRequest) -> list[DecodedSegment]:
        """One window of a live session (LocalAgreement runs in the Ingress)."""
        model = await self._model()
        async with self._lock:
            return await asyncio.to_thread(decode_with_model, model, request)

    def stats(self) -> dict[str, Any]:
        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "node_id": ray.get_runtime_context().get_node_id(),
            "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
            "threads": self._threads,
        }
