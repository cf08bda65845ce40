"""``make run``'s own config on a machine that cannot reach any model hub.

The app must still come up, say which models failed and why, and answer a request
for them with 503 ``model_unavailable`` instead of hanging.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines import audio
from tests.audio_factory import sine_mix
from tests.e2e.conftest import E2E_PORT, serve_run, shipped_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PORT = int(os.environ.get("STEMSCRIBE_TEST_E2E_NO_HUB_PORT", str(E2E_PORT + 1)))


@pytest.fixture(scope="module")
def no_hub_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """serve_config.yaml served with empty model caches and every hub refused at once."""
    work = tmp_path_factory.mktemp("no-hub")
    env = {
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(work / "hf"),
        "TORCH_HOME": str(work / "torch"),
        # Demucs falls back to plain HTTPS downloads: a closed local port refuses them now
        # rather than after a firewall's timeout. Ray's own traffic is not HTTPS.
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    with serve_run(shipped_config("serve_config.yaml", PORT), work, PORT, env=env) as base:
        yield base, work / "serve.log"


def settled_states(client: httpx.Client, timeout: float = 180.0) -> dict[str, Any]:
    """/readyz once the default models are no longer loading."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get("/readyz").json()
        models = body["models"]
        pending = [
            models[kind][name]["status"]
            for kind, name in (("separation", "htdemucs"), ("transcription", "base"))
        ]
        if "loading" not in pending and "not_loaded" not in pending:
            return dict(body)
        assert time.monotonic() < deadline, f"models still loading: {models}"
        time.sleep(2)


def test_serves_and_reports_what_cannot_be_fetched(no_hub_app: tuple[str, Path]) -> None:
    base, log = no_hub_app
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        catalogue = client.get("/v1/models").json()
        assert catalogue["separation"]["default"] == "htdemucs"
        assert catalogue["transcription"]["default"] == "base"  # no GPU: cpu_default_model
        body = settled_states(client)
        assert body["status"] == "ready"
        htdemucs = body["models"]["separation"]["htdemucs"]
        assert htdemucs["status"] == "failed" and htdemucs["error"]
        whisper = body["models"]["transcription"]["base"]
        assert whisper["status"] == "failed" and whisper["error"]

        wav = audio.encode(sine_mix(2.0), 44100, format="wav")
        refused = client.post("/v1/separations", files={"file": ("song.wav", wav)})
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "model_unavailable"
        assert error["details"]["model"] == "htdemucs" and error["details"]["reason"]
        assert "'htdemucs' is unavailable" in error["message"]

        refused = client.post("/v1/transcriptions", files={"file": ("talk.wav", wav)})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["details"]["model"] == "base"
    assert "stemscribe sizing: transcription: default model 'base'" in log.read_text()
