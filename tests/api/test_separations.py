"""Separation jobs through the HTTP API: accept, progress, results, files."""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from deployments.api import Services
from pipelines import audio
from pipelines.separation import Separator
from pipelines.separation.runner import separate
from tests.audio_factory import sine_mix
from tests.serving import follow_job

pytestmark = pytest.mark.api

RATE = 44100


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    return sine_mix(5.0, RATE, channels=2, seed=3)


@pytest.fixture(scope="module")
def song_wav(song: np.ndarray) -> bytes:
    return audio.encode(song, RATE, format="wav", bit_depth=32)


def submit(client: TestClient, data: bytes, **fields: Any) -> dict[str, Any]:
    form = {k: str(v) for k, v in fields.items()}
    response = client.post("/v1/separations", files={"file": ("song.wav", data)}, data=form)
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_health_and_models(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    models = client.get("/v1/models").json()["separation"]
    assert models["default"] == "tiny_htdemucs"
    names = {m["name"]: m for m in models["models"]}
    assert names["tiny_htdemucs"]["sources"] == ["drums", "bass", "other", "vocals"]
    assert names["tiny_htdemucs"]["samplerate"] == RATE


def test_separation_matches_in_process_separate(
    client: TestClient, song: np.ndarray, song_wav: bytes, separators: dict[str, Separator]
) -> None:
    job = submit(client, song_wav, format="wav", bit_depth=32, clip="none", shifts=0)
    assert job["status"] == "queued" and job["progress"] == 0.0
    done = follow_job(client, job, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    progress = done["_progress_seen"]
    assert progress == sorted(progress) and progress[-1] == 1.0
    expected = separate(separators["tiny_htdemucs"], song, overlap=0.25, shifts=0)
    outputs = done["result"]["outputs"]
    assert list(outputs) == ["drums", "bass", "other", "vocals"]
    for index, (name, link) in enumerate(outputs.items()):
        assert link["content_type"] == "audio/wav" and link["filename"] == f"{name}.wav"
        data = client.get(link["url"]).content
        assert len(data) == link["bytes"]
        stem = audio.decode(data, sample_rate=RATE, channels=2)
        assert stem.shape == song.shape
        assert np.max(np.abs(stem - expected[index])) <= 1e-5


def test_archive_holds_every_stem(client: TestClient, song_wav: bytes) -> None:
    done = follow_job(client, submit(client, song_wav, format="flac", two_stems="vocals"))
    assert done["status"] == "succeeded", done["error"]
    outputs = done["result"]["outputs"]
    assert set(outputs) == {"vocals", "no_vocals"}
    archive = zipfile.ZipFile(io.BytesIO(client.get(done["result"]["archive"]["url"]).content))
    assert sorted(archive.namelist()) == ["no_vocals.flac", "vocals.flac"]
    for name, link in outputs.items():
        assert archive.read(f"{name}.flac") == client.get(link["url"]).content


def test_stem_subset_and_mp3(client: TestClient, song_wav: bytes) -> None:
    done = follow_job(client, submit(client, song_wav, stems="bass,drums", format="mp3"))
    assert done["status"] == "succeeded", done["error"]
    outputs = done["result"]["outputs"]
    assert list(outputs) == ["bass", "drums"]
    data = client.get(outputs["bass"]["url"]).content
    info = audio.probe(data)
    assert info.codec == "mp3" and abs(info.duration - 5.0) < 0.1


def test_presigned_upload_then_job(client: TestClient, song_wav: bytes) -> None:
    reserved = client.post(
        "/v1/uploads",
        json={"filename": "my song.wav", "content_type": "audio/wav", "bytes": len(song_wav)},
    )
    assert reserved.status_code == 201, reserved.text
    upload = reserved.json()
    early = client.post("/v1/separations", json={"input": {"upload_id": upload["upload_id"]}})
    assert early.status_code == 400 and "PUT the file" in early.json()["error"]["message"]
    put = client.put(upload["put_url"], content=song_wav, headers=upload["headers"])
    assert put.status_code == 200, put.text
    body = {"input": {"upload_id": upload["upload_id"]}, "stems": ["vocals"]}
    response = client.post("/v1/separations", json=body)
    assert response.status_code == 202, response.text
    done = follow_job(client, response.json())
    assert done["status"] == "succeeded" and list(done["result"]["outputs"]) == ["vocals"]


def test_file_urls_support_range_and_reject_tampering(
    client: TestClient, services: Services, song_wav: bytes
) -> None:
    done = follow_job(client, submit(client, song_wav, stems="drums"))
    link = done["result"]["outputs"]["drums"]
    whole = client.get(link["url"]).content
    part = client.get(link["url"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    tail = client.get(link["url"], headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole[-10:]
    beyond = client.get(link["url"], headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.status_code == 416
    tampered = link["url"].replace("sig=", "sig=0")
    assert client.get(tampered).status_code == 403
    other_key = link["url"].replace("drums.wav?", "stems.zip?")
    assert client.get(other_key).json()["error"]["code"] == "invalid_signature"
    key = link["url"].split("/v1/files/")[1].split("?")[0]
    short = services.storage.presign_get(key, ttl=1)
    time.sleep(1.1)
    expired = client.get(short.url)
    assert expired.status_code == 403 and "expired" in expired.json()["error"]["message"]


def test_list_and_delete_jobs(client: TestClient, song_wav: bytes) -> None:
    ids = [follow_job(client, submit(client, song_wav, stems="bass"))["job_id"] for _ in range(3)]
    page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["job_id"] for j in page["jobs"]] == ids[::-1][:2]
    rest = client.get("/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert rest["jobs"][0]["job_id"] == ids[0]
    assert client.delete(f"/v1/jobs/{ids[0]}").status_code == 204
    assert client.get(f"/v1/jobs/{ids[0]}").status_code == 404


def test_cancel_running_job_removes_outputs(
    client: TestClient, services: Services, song_wav: bytes
) -> None:
    launcher = services.launcher
    launcher.gate.clear()  # type: ignore[attr-defined]
    try:
        job = submit(client, song_wav)
        deadline = time.monotonic() + 30
        while client.get(job["status_url"]).json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        response = client.delete(f"/v1/jobs/{job['job_id']}")
        assert response.status_code == 202 and response.json()["cancel_requested"]
    finally:
        launcher.gate.set()  # type: ignore[attr-defined]
    done = follow_job(client, job)
    assert done["status"] == "cancelled" and done["result"] is None
    leftovers = list(services.storage.list(f"jobs/{job['job_id']}/outputs/"))
    assert leftovers == []


def test_job_without_scratch_room_is_refused_before_anything_is_stored(
    client: TestClient, services: Services, song_wav: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads_before = sorted(o.key for o in services.storage.list("uploads/"))
    jobs_before = sorted(o.key for o in services.storage.list("jobs/"))
    monkeypatch.setattr(services.settings, "scratch_reserve_mb", 1e12)  # more than any disk
    response = client.post("/v1/separations", files={"file": ("song.wav", song_wav)})
    assert response.status_code == 507, response.text
    error = response.json()["error"]
    assert error["code"] == "insufficient_storage"
    assert error["details"]["needed_bytes"] > 5 * RATE * 2 * 4  # at least the decoded track
    assert error["details"]["free_bytes"] == 0
    assert "GiB of scratch disk" in error["message"]
    assert sorted(o.key for o in services.storage.list("uploads/")) == uploads_before
    assert sorted(o.key for o in services.storage.list("jobs/")) == jobs_before


def test_job_view_shows_stage_timings(client: TestClient, song_wav: bytes) -> None:
    job = submit(client, song_wav, shifts=0)
    done = follow_job(client, job)
    assert done["status"] == "succeeded", done
    stages = {"fetch", "decode", "forward", "queue_wait", "stitch", "encode", "upload"}
    assert stages <= set(done["timings"])
    assert all(seconds >= 0 for seconds in done["timings"].values())
