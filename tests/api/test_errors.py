"""Every bad request gets the JSON error shape with the right status and code."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from pipelines import audio
from tests.audio_factory import random_bytes, sine_mix, video_without_audio

pytestmark = pytest.mark.api


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"].endswith(".") and "Traceback" not in response.text
    return dict(body["error"])


def post_file(client: TestClient, data: bytes, **fields: str) -> Any:
    return client.post("/v1/separations", files={"file": ("in.wav", data)}, data=fields)


@pytest.fixture(scope="module")
def small_wav() -> bytes:
    return audio.encode(sine_mix(1.0), 44100, format="wav")


def test_undecodable_file_is_415(client: TestClient) -> None:
    error_of(post_file(client, random_bytes(5000)), 415, "unsupported_audio")


def test_video_without_audio_is_415(client: TestClient, tmp_path: Any) -> None:
    path = tmp_path / "silent.mp4"
    video_without_audio(path)
    error = error_of(post_file(client, path.read_bytes()), 415, "unsupported_audio")
    assert "no audio stream" in error["message"]


def test_unknown_model_lists_valid_ones(client: TestClient, small_wav: bytes) -> None:
    error = error_of(post_file(client, small_wav, model="htdemucs_nope"), 400, "unknown_model")
    assert error["details"]["available"] == ["demucs_unittest", "tiny_htdemucs"]
    assert "tiny_htdemucs" in error["message"]


def test_stem_the_model_lacks(client: TestClient, small_wav: bytes) -> None:
    error = error_of(post_file(client, small_wav, two_stems="guitar"), 400, "unknown_stem")
    assert error["details"]["stems"] == ["drums", "bass", "other", "vocals"]


def test_too_large_upload_is_413(client: TestClient) -> None:
    big = audio.encode(sine_mix(30.0), 44100, format="wav")  # ~5 MB, limit is 2 MB
    error_of(post_file(client, big), 413, "payload_too_large")
    reserve = {"filename": "big.wav", "bytes": 10 * 1024 * 1024}
    error_of(client.post("/v1/uploads", json=reserve), 413, "payload_too_large")


def test_unknown_job_is_404(client: TestClient) -> None:
    error_of(client.get("/v1/jobs/0123456789abcdef"), 404, "not_found")
    error_of(client.get("/v1/jobs/not-a-job-id/events"), 404, "not_found")
    error_of(client.delete("/v1/jobs/0123456789abcdef"), 404, "not_found")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"format": "ogg"}, "invalid_request"),
        ({"bit_depth": "12"}, "invalid_request"),
        ({"overlap": "lots"}, "invalid_request"),
        ({"stems": "vocals", "two_stems": "vocals"}, "invalid_request"),
        ({"shifts": "-1"}, "invalid_request"),
        ({"colour": "blue"}, "invalid_request"),
    ],
)
def test_bad_fields(
    client: TestClient, small_wav: bytes, fields: dict[str, str], code: str
) -> None:
    response = post_file(client, small_wav, **fields)
    assert response.status_code in (400, 422)
    error_of(response, response.status_code, code)


def test_shifts_over_the_limit(client: TestClient, small_wav: bytes) -> None:
    error_of(post_file(client, small_wav, shifts="50"), 400, "invalid_request")


def test_bad_json_bodies(client: TestClient) -> None:
    raw = client.post(
        "/v1/separations", content=b"{nope", headers={"content-type": "application/json"}
    )
    error_of(raw, 400, "invalid_request")
    error_of(client.post("/v1/separations", json={"model": "x"}), 400, "invalid_request")
    error_of(client.post("/v1/separations", json={"input": {}}), 400, "invalid_request")
    missing = client.post("/v1/separations", json={"input": {"upload_id": "ab" * 12}})
    error_of(missing, 404, "not_found")
    no_form = client.post("/v1/separations", content=b"x", headers={"content-type": "text/plain"})
    error_of(no_form, 400, "invalid_request")
    error_of(client.post("/v1/uploads", json={"filename": "a.wav"}), 422, "invalid_request")


def test_internal_urls_are_refused(client: TestClient) -> None:
    for url in ("http://127.0.0.1:8000/x.wav", "file:///etc/passwd", "http://u:p@example.com/a"):
        error_of(
            client.post("/v1/separations", json={"input": {"url": url}}), 400, "invalid_request"
        )


def test_unknown_route_and_method(client: TestClient) -> None:
    error_of(client.get("/v1/nothing-here"), 404, "not_found")
    error_of(client.put("/v1/jobs"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"format": "flac", "bit_depth": "32"}, "bit_depth"), ({"mp3_bitrate": "33"}, "mp3_bitrate")],
)
def test_output_options_the_format_cannot_take_are_400_before_the_job(
    client: TestClient, small_wav: bytes, fields: dict[str, str], field: str
) -> None:
    response = post_file(client, small_wav, **{"format": "mp3", **fields})
    assert error_of(response, 400, "invalid_request")["details"]["field"] == field
