"""What the HTTP layer depends on, gathered in one object built by the Ingress.

Tests build it with fakes (a launcher that runs jobs in-process) instead of patching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request

from config import AppArgs, Settings
from pipelines.jobs import JobStore
from pipelines.storage import Storage
from pipelines.storage.signing import UrlSigner


class JobLauncher(Protocol):
    """Hands accepted jobs to the workers and answers questions about models."""

    async def submit(self, kind: str, job_id: str) -> None:
        """Start (or queue) the job; returns once it is handed over, not when it ends."""
        ...

    async def separation_models(self) -> dict[str, dict[str, Any]]:
        """Enabled Demucs models: name -> {sources, samplerate, audio_channels, ...}."""
        ...


@dataclass
class Services:
    args: AppArgs
    settings: Settings
    storage: Storage
    jobs: JobStore
    launcher: JobLauncher
    signer: UrlSigner | None = None
    """Set for the ``local`` backend, whose file URLs the ingress itself serves."""


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def current_owner(request: Request) -> str:
    """The tenant a request acts for; every job and file is scoped to it."""
    owner: str = getattr(request.state, "owner", "public")
    return owner
