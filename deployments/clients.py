"""Typed wrappers over DeploymentHandles, so callers never see Ray's call syntax.

Remote calls re-raise the domain error a replica raised (Ray wraps it), so the
Ingress maps it to the same HTTP status as a local one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import numpy as np
from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator

from config import TranscriptionArgs
from deployments.overload import SERVE_OVERLOAD, as_overloaded
from pipelines.errors import StemscribeError
from pipelines.jobs.transcription import collect_transcript
from pipelines.model_catalog import raise_if_failed
from pipelines.streaming import DecodedSegment, DecodeRequest
from pipelines.transcription import TranscribeOptions, Transcript, pick_model


def domain_cause(exc: BaseException) -> BaseException:
    """The domain error inside a remote failure, or the failure itself."""
    cause = exc.cause if isinstance(exc, RayTaskError) else None
    return cause if isinstance(cause, StemscribeError) else exc


class TranscriberClient:
    """Calls the Transcriber deployment by public model name."""

    def __init__(self, handle: DeploymentHandle, args: TranscriptionArgs) -> None:
        self._handle = handle
        self._args = args

    def resolve(self, name: str | None) -> str:
        return pick_model(name, list(self._args.models), self._args.default_model)

    async def stream(
        self, model: str, audio: np.ndarray, options: TranscribeOptions
    ) -> AsyncIterator[dict[str, Any]]:
        handle = self._handle.options(multiplexed_model_id=model, stream=True)
        items = cast(DeploymentResponseGenerator, handle.transcribe.remote(audio, options))
        try:
            async for item in items:
                yield item
        except RayTaskError as exc:
            raise domain_cause(exc) from exc
        except SERVE_OVERLOAD as exc:
            raise as_overloaded(exc) from exc

    async def transcribe(
        self, model: str, audio: np.ndarray, options: TranscribeOptions
    ) -> Transcript:
        return await collect_transcript(self.stream(model, audio, options))

    async def model_states(self) -> dict[str, dict[str, Any]]:
        try:
            states: dict[str, dict[str, Any]] = await self._handle.model_states.remote()
        except RayTaskError as exc:
            raise domain_cause(exc) from exc
        except SERVE_OVERLOAD as exc:
            raise as_overloaded(exc) from exc
        return states

    async def check_available(self, model: str) -> None:
        raise_if_failed(await self.model_states(), model)

    async def decode(self, model: str, request: DecodeRequest) -> list[DecodedSegment]:
        handle = self._handle.options(multiplexed_model_id=model)
        try:
            result: list[DecodedSegment] = await handle.decode.remote(request)
        except RayTaskError as exc:
            raise domain_cause(exc) from exc
        except SERVE_OVERLOAD as exc:
            raise as_overloaded(exc) from exc
        return result
