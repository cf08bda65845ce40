"""``build_app``: the only place deployments are wired together.

It is the ``import_path`` of ``serve_config.yaml`` and of the RayService's
``serveConfigV2``: ``deployments.app:build_app``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray
from ray import serve
from ray.serve import Application
from ray.serve.deployment import Deployment

from config import AppArgs, DeploymentArgs, Settings, parse_app_args
from config.app_args import MODEL_ENV
from deployments.coordinator import JobCoordinator
from deployments.demucs_worker import DemucsWorker
from deployments.ingress import Ingress
from deployments.sizing import ClusterResources, report, size_for
from deployments.transcriber import Transcriber


def build_app(args: dict[str, Any]) -> Application:
    """Validate the application ``args`` (YAML), fit them to the cluster this runs in
    (``deployments.sizing``), and bind the deployments."""
    parsed = parse_app_args(args)
    if parsed.separation.simulated_device is not None:
        raise ValueError(
            "separation.simulated_device is for benchmarks (bench/scaleout.py builds its app "
            "in code); a deployed app computes on a real device, so remove it from the config"
        )
    if ray.is_initialized():  # serve run / serve deploy build the app inside the cluster
        sizing = size_for(parsed, ClusterResources.current())
        report(sizing)
        parsed = sizing.args
    return compose(parsed)


def compose(args: AppArgs, settings: Settings | None = None) -> Application:
    """Ingress → JobCoordinator → (DemucsWorker, Transcriber), shaped by ``args``.

    ``settings`` is for tests that point replicas at a specific store; a deployed
    app leaves it unset and every replica reads its own environment.
    """
    worker = _deployment(DemucsWorker, args.demucs_worker, env=MODEL_ENV).bind(
        args.separation, args.demucs_worker.compute_threads
    )
    transcriber = _deployment(Transcriber, args.transcriber, env=MODEL_ENV).bind(
        args.transcription, args.transcriber.compute_threads
    )
    coordinator = _deployment(JobCoordinator, args.coordinator).bind(
        worker, transcriber, args, settings
    )
    ingress = _deployment(serve.ingress()(Ingress), args.ingress, name="Ingress")
    return ingress.bind(coordinator, transcriber, args, settings)


def _deployment(
    cls: type, shape: DeploymentArgs, name: str | None = None, env: Mapping[str, str] | None = None
) -> Deployment:
    """The one place config meets ``serve.deployment``; ``env``: the replicas' environment."""
    return serve.deployment(name=name or cls.__name__, **shape.serve_options(env))(cls)
