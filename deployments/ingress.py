"""Ingress: the one deployment that speaks HTTP; everything else is a handle call."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from ray.serve.handle import DeploymentHandle

from config import AppArgs, Settings
from deployments.api import Services, create_api
from deployments.launcher import HandleLauncher
from pipelines.jobs import JobStore
from pipelines.storage import LocalStorage, open_storage

log = logging.getLogger(__name__)


class Ingress:
    """Builds the FastAPI app of one replica from its handles and settings."""

    def __init__(
        self, separation: DeploymentHandle, args: AppArgs, settings: Settings | None = None
    ) -> None:
        settings = settings or Settings()
        storage = open_storage(settings)
        signer = storage.signer if isinstance(storage, LocalStorage) else None
        self.services = Services(
            args=args,
            settings=settings,
            storage=storage,
            jobs=JobStore(storage),
            launcher=HandleLauncher({"separation": separation}),
            signer=signer,
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self.services)
