"""Ingress: the one deployment that speaks HTTP; everything else is a handle call."""

from __future__ import annotations

from ray.serve.handle import DeploymentHandle
from starlette.types import ASGIApp

from config import AppArgs, Settings
from deployments.api import Services, create_asgi
from deployments.api.urls import files_url
from deployments.clients import TranscriberClient
from deployments.launcher import HandleLauncher
from deployments.metrics import STREAM_SESSIONS, count_storage_error
from pipelines.jobs import JobStore
from pipelines.storage import open_storage
from pipelines.storage.retrying import RetryingStorage


class Ingress:
    """Builds the FastAPI app of one replica from its handles and settings."""

    def __init__(
        self,
        coordinator: DeploymentHandle,
        transcriber: DeploymentHandle,
        args: AppArgs,
        settings: Settings | None = None,
    ) -> None:
        settings = settings or Settings()
        backend = open_storage(settings, files_url=files_url(settings))
        storage = RetryingStorage(backend, 0, on_failure=count_storage_error)  # fail fast
        self.services = Services(
            args=args,
            settings=settings,
            storage=storage,
            jobs=JobStore(storage),
            launcher=HandleLauncher(coordinator),
            transcriber=TranscriberClient(transcriber, args.transcription),
            signer=backend.url_signer,
            on_stream_sessions=lambda count: STREAM_SESSIONS.set(count),
        )

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return create_asgi(self.services)
