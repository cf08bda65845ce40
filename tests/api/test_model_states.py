"""Models that cannot be loaded: a clear 503 naming the model and why, and /readyz says so."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from deployments.api import Services
from pipelines import audio
from tests.api.test_errors import error_of
from tests.audio_factory import sine_mix
from tests.fakes import InProcessLauncher, InProcessTranscriber

pytestmark = pytest.mark.api

NO_HUB = "OSError: [Errno -2] Name or service not known"


@pytest.fixture
def broken(services: Services) -> Iterator[tuple[InProcessLauncher, InProcessTranscriber]]:
    """tiny_htdemucs and tiny.en recorded as failed to load, for one test."""
    launcher, transcriber = services.launcher, services.transcriber
    assert isinstance(launcher, InProcessLauncher)
    assert isinstance(transcriber, InProcessTranscriber)
    launcher.unavailable["tiny_htdemucs"] = NO_HUB
    transcriber.failed["tiny.en"] = NO_HUB
    yield launcher, transcriber
    launcher.unavailable.clear()
    transcriber.failed.clear()


def test_readyz_lists_model_states(client: TestClient) -> None:
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["models"]["separation"]["tiny_htdemucs"] == {"status": "ready"}
    assert body["models"]["transcription"] == {"tiny.en": {"status": "ready"}}


def test_separation_with_an_unavailable_model_is_503(client: TestClient, broken: object) -> None:
    wav = audio.encode(sine_mix(1.0), 44100, format="wav")
    response = client.post("/v1/separations", files={"file": ("in.wav", wav)})
    error = error_of(response, 503, "model_unavailable")
    assert error["details"] == {"model": "tiny_htdemucs", "reason": NO_HUB}
    assert "'tiny_htdemucs' is unavailable" in error["message"]
    assert response.headers["retry-after"]
    ok = client.post(
        "/v1/separations", files={"file": ("in.wav", wav)}, data={"model": "demucs_unittest"}
    )
    assert ok.status_code == 202, ok.text


def test_transcription_job_with_an_unavailable_model_is_503(
    client: TestClient, broken: object
) -> None:
    wav = audio.encode(sine_mix(1.0, 16000), 16000, format="wav")
    response = client.post("/v1/transcriptions", files={"file": ("in.wav", wav)})
    error = error_of(response, 503, "model_unavailable")
    assert error["details"] == {"model": "tiny.en", "reason": NO_HUB}
    states = client.get("/readyz").json()["models"]["transcription"]
    assert states["tiny.en"] == {"status": "failed", "error": NO_HUB}
