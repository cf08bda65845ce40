"""The HTTP API of the Ingress, as a plain FastAPI app built from ``Services``."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.types import ASGIApp

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
from deployments.api.auth import OPEN_TENANT, ApiKeys
from deployments.api.compat import include_compat_routes
from deployments.api.errors import install_error_handlers
from deployments.api.middleware import install_middleware
from deployments.api.services import JobLauncher, Services

__all__ = ["JobLauncher", "Services", "create_api", "create_asgi"]

log = logging.getLogger(__name__)


def create_api(services: Services) -> FastAPI:
    """One app per Ingress replica; routers are grouped by API area."""
    app = FastAPI(
        title="stemscribe",
        version="1",
        description="Stem separation (Demucs) and transcription (faster-whisper) as a service.",
    )
    app.state.services = services
    keys = ApiKeys.from_settings(services.settings)
    if keys.open:
        log.warning(
            "NO API KEYS CONFIGURED: the API is open to anyone who can reach it, and every "
            "caller acts as tenant %r, seeing every other caller's jobs. Set "
            "STEMSCRIBE_API_KEYS=tenant:key,... to require keys.",
            OPEN_TENANT,
        )
    install_error_handlers(app)
    install_middleware(app, services, keys)
    for module in (health, uploads, separations, transcriptions, openai, jobs, files, streaming):
        app.include_router(module.router)
    if services.args.compat.enabled:
        include_compat_routes(app)
    app.include_router(web.router)
    return app


def create_asgi(services: Services) -> ASGIApp:
    """What an Ingress replica serves: the API, plus Socket.IO when compat is enabled."""
    app = create_api(services)
    if not services.args.compat.enabled:
        return app
    from deployments.api.compat.sockets import mount_socketio

    return mount_socketio(app, services, ApiKeys.from_settings(services.settings))
