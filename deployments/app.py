"""``build_app``: the only place deployments are wired together.

It is the ``import_path`` of ``serve_config.yaml`` and of the RayService's
``serveConfigV2``: ``deployments.app:build_app``.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from config import AppArgs, Settings, parse_app_args
from deployments.coordinator import JobCoordinator
from deployments.demucs_worker import DemucsWorker
from deployments.ingress import Ingress
from deployments.transcriber import Transcriber


def build_app(args: dict[str, Any]) -> Application:
    """Validate the application ``args`` (YAML) and bind the deployments."""
    return compose(parse_app_args(args))


def compose(args: AppArgs, settings: Settings | None = None) -> Application:
    """Ingress → JobCoordinator → (DemucsWorker, Transcriber), shaped by ``args``.

    ``settings`` is for tests that point replicas at a specific store; a deployed
    app leaves it unset and every replica reads its own environment.
    """
    worker = serve.deployment(
        DemucsWorker, name="DemucsWorker", **args.demucs_worker.serve_options()
    ).bind(args.separation, args.demucs_worker.compute_threads)
    transcriber = serve.deployment(
        Transcriber, name="Transcriber", **args.transcriber.serve_options()
    ).bind(args.transcription, args.transcriber.compute_threads)
    coordinator = serve.deployment(
        JobCoordinator, name="JobCoordinator", **args.coordinator.serve_options()
    ).bind(worker, transcriber, args, settings)
    ingress = serve.deployment(
        serve.ingress()(Ingress), name="Ingress", **args.ingress.serve_options()
    )
    return ingress.bind(coordinator, transcriber, args, settings)
