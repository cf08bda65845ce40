"""What the HTTP layer depends on, gathered in one object built by the Ingress.

Tests build it with fakes (a launcher that runs jobs in-process) instead of patching.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import Depends, Request

from config import AppArgs, Settings
from pipelines.jobs import JobStore
from pipelines.storage import Storage
from pipelines.storage.signing import UrlSigner
from pipelines.streaming import DecodedSegment, DecodeRequest
from pipelines.transcription import TranscribeOptions, Transcript


class Transcribing(Protocol):
    """Whisper by public model name: whole files (streamed segments) or live windows."""

    def resolve(self, name: str | None) -> str:
        """The enabled model a request means (``whisper-1`` is the default)."""
        ...

    def stream(
        self, model: str, audio: np.ndarray, options: TranscribeOptions
    ) -> AsyncIterator[dict[str, Any]]:
        """``{"meta": ...}`` then ``{"segment": ...}`` items."""
        ...

    async def transcribe(
        self, model: str, audio: np.ndarray, options: TranscribeOptions
    ) -> Transcript: ...

    async def decode(self, model: str, request: DecodeRequest) -> list[DecodedSegment]:
        """One window of a live session."""
        ...

    async def model_states(self) -> dict[str, dict[str, Any]]:
        """``{name: {"status": not_loaded/loading/ready/failed, "error"?}}``."""
        ...

    async def check_available(self, model: str) -> None:
        """Raise ``ModelUnavailable`` when ``model`` failed to load (and is not retried yet)."""
        ...


class JobLauncher(Protocol):
    """Hands accepted jobs to the workers and answers questions about models."""

    async def submit(self, kind: str, job_id: str) -> None:
        """Start (or queue) the job; returns once it is handed over, not when it ends."""
        ...

    async def separation_models(self, wait_for: str | None = None) -> dict[str, dict[str, Any]]:
        """Enabled Demucs models: name -> {status, loaded, and once loaded: sources,
        samplerate, audio_channels, ...}. ``wait_for`` names the model a request is about
        to use: it is loaded first, or ``ModelUnavailable`` / ``ModelLoading`` is raised."""
        ...


@dataclass
class Services:
    args: AppArgs
    settings: Settings
    storage: Storage
    jobs: JobStore
    launcher: JobLauncher
    transcriber: Transcribing
    signer: UrlSigner | None = None
    """Set for the ``local`` backend, whose file URLs the ingress itself serves."""
    on_stream_sessions: Callable[[int], None] | None = None
    """Told the open live-session count whenever it changes (the Ingress exports it)."""


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def current_owner(request: Request) -> str:
    """The tenant a request acts for; every job and file is scoped to it.

    Set by ``AccessMiddleware`` from the API key (``auth.py``); ``public`` when the
    service runs without keys.
    """
    owner: str = getattr(request.state, "owner", "public")
    return owner


AppServices = Annotated[Services, Depends(get_services)]
"""A route parameter: the app's `Services`."""
Owner = Annotated[str, Depends(current_owner)]
"""A route parameter: the tenant the request acts for (`current_owner`)."""
