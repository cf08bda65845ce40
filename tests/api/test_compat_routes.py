"""The earlier servers' REST routes, driven as their documents' curl lines drive them."""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from config import AppArgs
from deployments.api import Services, create_api
from evaluation.wer import word_error_rate
from pipelines import audio
from tests.audio_factory import sine_mix
from tests.speech import TRANSCRIPTS, speech_path

pytestmark = pytest.mark.api

RATE = 44100


@pytest.fixture(scope="module")
def song_mp3() -> bytes:
    return audio.encode(sine_mix(4.0, RATE, channels=2, seed=5), RATE, format="mp3")


def wait_status(client: TestClient, url: str, done: set[str], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(url).json()
        if body["status"] in done:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url} did not reach {done}: {body}")


def test_health_serves_both_shapes_and_stays_open(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "healthy" and body["websocket_support"] is True
    assert body["available_models"] == ["demucs", "whisper"]
    assert body["transcription_endpoint"] == "/transcribe"


def test_separation_server_upload_status_download_jobs(client: TestClient, song_mp3: bytes) -> None:
    info = client.get("/api/info").json()
    assert info["models"] == ["demucs_unittest", "tiny_htdemucs"]
    assert info["stems"] == ["all", "vocals", "drums", "bass", "other"]
    # curl -F audio_file=@song.mp3 -F model=tiny_htdemucs -F stems=vocals -F format=wav
    files = {"audio_file": ("song.mp3", song_mp3, "audio/mpeg")}
    form = {"model": "tiny_htdemucs", "stems": "vocals", "format": "wav"}
    created = client.post("/api/upload", files=files, data=form)
    assert created.status_code == 200, created.text
    job_id = created.json()["job_id"]
    assert created.json()["status"] == "queued"
    done = wait_status(client, f"/api/status/{job_id}", {"completed", "failed"})
    assert done["status"] == "completed" and done["progress"] == 100, done
    assert done["stems"] == "vocals" and done["model"] == "tiny_htdemucs"
    download = client.get(f"/api/download/{job_id}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert sorted(names) == ["no_vocals.wav", "vocals.wav"]
    listed = client.get("/api/jobs").json()["jobs"]
    assert job_id in [j["job_id"] for j in listed]
    # the same job is a /v1 job of the same tenant
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


def test_separation_server_refusals(client: TestClient, song_mp3: bytes) -> None:
    files = {"audio_file": ("song.mp3", song_mp3, "audio/mpeg")}
    bad_stem = client.post("/api/upload", files=files, data={"stems": "piano"})
    assert bad_stem.status_code == 400 and bad_stem.json()["error"]["details"]["field"] == "stems"
    bad_model = client.post("/api/upload", files=files, data={"model": "htdemucs_9s"})
    assert bad_model.status_code == 400
    assert bad_model.json()["error"]["code"] == "unknown_model"
    wrong_field = client.post("/api/upload", files={"file": ("song.mp3", song_mp3)})
    assert wrong_field.status_code == 400
    assert wrong_field.json()["error"]["details"]["field"] == "audio_file"
    not_audio = client.post("/api/upload", files={"audio_file": ("x.mp3", b"not audio" * 99)})
    assert not_audio.status_code == 415
    assert client.get("/api/status/0123abcd").status_code == 404


def test_multimodel_upload_process_status_files_download_cleanup(
    client: TestClient, services: Services, song_mp3: bytes
) -> None:
    models = client.get("/models").json()["models"]
    assert models["musicgen"]["available"] is False
    assert models["demucs"]["variants"] == ["demucs_unittest", "tiny_htdemucs"]
    # curl -F file=@speech.wav .../upload
    speech = speech_path("weather").read_bytes()
    uploaded = client.post("/upload", files={"file": ("weather.wav", speech, "audio/wav")})
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["file_id"]
    assert client.get(f"/status/{file_id}").json()["status"] == "uploaded"
    # curl -X POST -H 'Content-Type: application/json' -d '{"model_variant": ...}'
    split = client.post(f"/process/demucs/{file_id}", json={"model_variant": "tiny_htdemucs"})
    assert split.status_code == 200, split.text
    words = client.post(f"/process/whisper/{file_id}", json={"model_variant": "tiny.en"})
    assert words.status_code == 200, words.text
    status = wait_status(client, f"/status/{file_id}", {"completed", "failed"})
    for model in ("demucs", "whisper"):
        wait_status(client, f"/status/{file_id}", {"completed"})
        assert client.get(f"/status/{file_id}").json()["models"][model]["status"] == "completed"
    assert status["progress"] == 100
    listed = {f["track"]: f for f in client.get(f"/files/{file_id}").json()["files"]}
    assert {"vocals", "drums", "bass", "other", "transcription", "stems.zip"} <= set(listed)
    vocals = client.get(f"/download/{file_id}/vocals")
    assert vocals.status_code == 200 and len(vocals.content) == listed["vocals"]["size"]
    text = client.get(f"/download/{file_id}/transcription").text
    assert word_error_rate(TRANSCRIPTS["weather"], text) <= 0.10
    assert client.get(f"/download/{file_id}/piano").status_code == 404
    job_ids = [split.json()["job_id"], words.json()["job_id"]]
    cleaned = client.delete(f"/cleanup/{file_id}")
    assert cleaned.status_code == 200 and sorted(cleaned.json()["deleted_jobs"]) == sorted(job_ids)
    assert list(services.storage.list(f"uploads/{file_id}/")) == []
    for job_id in job_ids:
        assert list(services.storage.list(f"jobs/{job_id}/")) == []
    assert client.get(f"/status/{file_id}").status_code == 404


def test_multimodel_refusals(client: TestClient, song_mp3: bytes) -> None:
    file_id = client.post("/upload", files={"file": ("s.mp3", song_mp3)}).json()["file_id"]
    musicgen = client.post(f"/process/musicgen/{file_id}", json={})
    assert musicgen.status_code == 501
    assert musicgen.json()["error"]["code"] == "model_not_available"
    assert "not available" in musicgen.json()["error"]["message"]
    assert client.post(f"/process/bark/{file_id}").json()["error"]["code"] == "unknown_model"
    bad_variant = client.post(f"/process/demucs/{file_id}", json={"model_variant": "mdx_q"})
    assert bad_variant.status_code == 400
    early = client.get(f"/download/{file_id}/vocals")
    assert early.status_code == 404
    assert client.post("/separate/ffffffffffffffffffffffff").status_code == 404
    legacy = client.post(f"/separate/{file_id}")
    assert legacy.status_code == 200 and legacy.json()["model"] == "demucs"
    assert client.delete(f"/cleanup/{file_id}").status_code == 200


def test_seed_routes_leave_v1_and_the_page_alone(client: TestClient) -> None:
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/v1/models").status_code == 200
    assert client.get("/v1/files/jobs/x?exp=1&sig=x").status_code in (403, 404)


def test_compat_switched_off(services: Services) -> None:
    args = AppArgs.model_validate({**services.args.model_dump(), "compat": {"enabled": False}})
    with TestClient(create_api(replace(services, args=args))) as off:
        assert off.get("/health").status_code == 404
        assert off.get("/api/info").status_code == 404
        assert off.get("/models").status_code == 404
        assert off.get("/healthz").status_code == 200


def test_seed_routes_need_a_key_and_keep_tenants_apart(services: Services, song_mp3: bytes) -> None:
    keys = SecretStr(f"acme:{'a' * 24}, beta:{'b' * 24}")
    settings = services.settings.model_copy(update={"api_keys": keys})
    acme = {"Authorization": f"Bearer {'a' * 24}"}
    beta = {"Authorization": f"Bearer {'b' * 24}"}
    with TestClient(create_api(replace(services, settings=settings))) as client:
        assert client.get("/health").status_code == 200
        for path in ("/api/info", "/api/jobs", "/models", "/files/abc", "/status/abc"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["code"] == "unauthorized"
        upload = client.post("/upload", files={"file": ("s.mp3", song_mp3)})
        assert upload.status_code == 401
        file_id = client.post("/upload", files={"file": ("s.mp3", song_mp3)}, headers=acme)
        file_id = file_id.json()["file_id"]
        assert client.get(f"/status/{file_id}", headers=acme).status_code == 200
        assert client.get(f"/status/{file_id}", headers=beta).status_code == 404
        assert client.delete(f"/cleanup/{file_id}", headers=beta).status_code == 404
        assert client.delete(f"/cleanup/{file_id}", headers=acme).status_code == 200
