"""The HTTP API of the Ingress, as a plain FastAPI app built from ``Services``."""

from __future__ import annotations

from fastapi import FastAPI

from deployments.api import (
    files,
    health,
    jobs,
    openai,
    separations,
    streaming,
    transcriptions,
    uploads,
    web,
)
from deployments.api.errors import install_error_handlers
from deployments.api.services import JobLauncher, Services

__all__ = ["JobLauncher", "Services", "create_api"]


def create_api(services: Services) -> FastAPI:
    """One app per Ingress replica; routers are grouped by API area."""
    app = FastAPI(
        title="stemscribe",
        version="1",
        description="Stem separation (Demucs) and transcription (faster-whisper) as a service.",
    )
    app.state.services = services
    install_error_handlers(app)
    for module in (health, uploads, separations, transcriptions, openai, jobs, files, streaming):
        app.include_router(module.router)
    app.include_router(web.router)
    return app
