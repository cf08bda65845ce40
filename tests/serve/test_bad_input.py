"""Broken and hostile audio through the real proxy and replicas.

Each file of ``scripts/make_broken_audio.py`` gets a 4xx with a specific code (or,
where the service can read it, is accepted and separated), through the multipart
job route, the OpenAI-compatible route, the upload path and ``input.url``: every
input form passes the same probe before a job exists. No replica restarts, and a
valid separation still succeeds afterwards.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from pipelines import audio
from scripts.make_broken_audio import write_corpus
from tests.audio_factory import sine_mix
from tests.serve.conftest import APP

pytestmark = [pytest.mark.serve, pytest.mark.timeout(300)]

REFUSED = {
    "zero_length.wav": (400, "invalid_request"),
    "random_noise.mp3": (415, "unsupported_audio"),
    "text_file.wav": (415, "unsupported_audio"),
    "riff_header_then_garbage.wav": (415, "unsupported_audio"),
    "truncated_mid_frame.mp3": (415, "unsupported_audio"),
    "wav_huge_sample_rate.wav": (415, "unsupported_audio"),
    "wav_zero_sample_rate.wav": (415, "unsupported_audio"),
    "wav_zero_channels.wav": (415, "unsupported_audio"),
    "video_without_audio.mp4": (415, "unsupported_audio"),
    "id3_declaring_256mb.mp3": (415, "unsupported_audio"),
    "id3_only.mp3": (415, "unsupported_audio"),
    "png_then_mp3.mp3": (415, "unsupported_audio"),
    "pcm_header_then_nothing.wav": (415, "unsupported_audio"),
    "float_wav_nan.wav": (415, "unsupported_audio"),
    "opus_64_channels.opus": (415, "unsupported_audio"),
    "playlist_server_file.m3u8": (415, "unsupported_audio"),
    "playlist_loopback_http.m3u8": (415, "unsupported_audio"),
    "playlist_named_song.mp3": (415, "unsupported_audio"),
    "concat_script.wav": (415, "unsupported_audio"),
    "session_description.wav": (415, "unsupported_audio"),
    "silence_one_hour.flac": (413, "audio_too_long"),
    "two_seconds_claiming_one_hour.flac": (413, "audio_too_long"),
    "oversized.wav": (413, "payload_too_large"),
}
"""Refused by the ingress before a job exists: its probe opens only accepted containers
(no playlists, scripts or session descriptions, nothing nested), reads the headers
and decodes the first samples."""

FAIL_IN_JOB = {
    "one_hour_claiming_ten_seconds.flac": "audio_too_long",
}
"""Headers that look fine: only decoding finds the problem, so the job fails with its code."""

ACCEPTED = {
    "truncated_half.mp3": 1.0,  # what is there is decoded, as ffmpeg does
    "wav_declaring_4gb.wav": 1.0,  # FFmpeg trusts the file's size over the header's
    "wav_declaring_one_hour.wav": 1.0,
    "wav_eight_channels.wav": 0.5,  # Demucs' channel rule: the first two channels
}
"""Readable audio despite odd headers: separated like any file (seconds of audio)."""

NOT_BY_REFERENCE = {"zero_length.wav", "oversized.wav"}
"""Refused for their size by the upload and URL paths' own checks (tested elsewhere)."""


def test_every_corpus_file_has_an_expectation(corpus: dict[str, Path]) -> None:
    assert set(corpus) == set(REFUSED) | set(FAIL_IN_JOB) | set(ACCEPTED)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("broken"), oversized_mb=9.0)


@pytest.fixture(scope="module")
def client(served: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served, timeout=60) as session:
        yield session


@pytest.fixture(scope="module")
def replicas_before(served: str) -> set[str]:
    return serve_replicas()


def serve_replicas() -> set[str]:
    """Names of the app's live replica actors (a restarted replica gets a new name)."""
    actors = ray.util.list_named_actors(all_namespaces=True)
    return {a["name"] for a in actors if a["name"].startswith("SERVE_REPLICA::" + APP + "#")}


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    return dict(error)


def openai_error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    return dict(error)


def separate(client: httpx.Client, path: Path) -> httpx.Response:
    files = {"file": (path.name, path.read_bytes())}
    return client.post("/v1/separations", files=files, data={"shifts": "0"})


def transcribe(client: httpx.Client, path: Path) -> httpx.Response:
    files = {"file": (path.name, path.read_bytes())}
    return client.post("/v1/audio/transcriptions", files=files, data={"model": "tiny.en"})


def finished(client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} not finished after {timeout:.0f} s")


def from_storage(client: httpx.Client, path: Path) -> httpx.Response:
    """Upload ``path`` straight to storage, then ask for a separation of its upload_id."""
    data = path.read_bytes()
    reserve = {"filename": path.name, "bytes": len(data)}
    upload = client.post("/v1/uploads", json=reserve)
    assert upload.status_code == 201, upload.text
    put = httpx.put(upload.json()["put_url"], content=data, headers=upload.json()["headers"])
    assert put.status_code == 200, put.text
    body = {"input": {"upload_id": upload.json()["upload_id"]}, "shifts": 0}
    return client.post("/v1/separations", json=body)


@pytest.fixture(scope="module")
def corpus_url(corpus: dict[str, Path]) -> Iterator[str]:
    """The corpus served over HTTP on loopback (the app allows private URLs here)."""
    folder = next(iter(corpus.values())).parent
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    port = int(os.environ.get("STEMSCRIBE_TEST_FILES_PORT", "28300"))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{port}"
        httpd.shutdown()


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_before_a_job_exists(
    client: httpx.Client, corpus: dict[str, Path], replicas_before: set[str], name: str
) -> None:
    status, code = REFUSED[name]
    error_of(separate(client, corpus[name]), status, code)
    openai_status = 400 if status == 415 else status  # OpenAI's status for unreadable audio
    openai_error_of(transcribe(client, corpus[name]), openai_status, code)


@pytest.mark.parametrize("name", list(FAIL_IN_JOB))
def test_failing_only_when_decoded_fails_the_job(
    client: httpx.Client, corpus: dict[str, Path], replicas_before: set[str], name: str
) -> None:
    code = FAIL_IN_JOB[name]
    accepted = separate(client, corpus[name])
    assert accepted.status_code == 202, accepted.text
    job = finished(client, accepted.json()["job_id"])
    assert (job["status"], job["error"]["code"]) == ("failed", code), job
    openai_status = 413 if code == "audio_too_long" else 400
    openai_error_of(transcribe(client, corpus[name]), openai_status, code)


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_readable_despite_odd_headers(
    client: httpx.Client, corpus: dict[str, Path], replicas_before: set[str], name: str
) -> None:
    accepted = separate(client, corpus[name])
    assert accepted.status_code == 202, accepted.text
    job = finished(client, accepted.json()["job_id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["duration"] == pytest.approx(ACCEPTED[name], abs=0.1)
    assert transcribe(client, corpus[name]).status_code == 200


@pytest.mark.parametrize("name", sorted(set(REFUSED) - NOT_BY_REFERENCE))
def test_stored_uploads_and_urls_pass_the_same_probe(
    client: httpx.Client,
    corpus: dict[str, Path],
    corpus_url: str,
    replicas_before: set[str],
    name: str,
) -> None:
    status, code = REFUSED[name]
    error_of(from_storage(client, corpus[name]), status, code)
    by_url = {"input": {"url": f"{corpus_url}/{name}"}, "shifts": 0}
    error_of(client.post("/v1/separations", json=by_url), status, code)


def test_replicas_survive_the_corpus(
    client: httpx.Client, served: str, replicas_before: set[str]
) -> None:
    """Runs last in this module: every replica that saw the corpus still serves."""
    data = audio.encode(sine_mix(1.5, 44100, seed=9), 44100, format="wav")
    accepted = client.post("/v1/separations", files={"file": ("ok.wav", data)})
    assert accepted.status_code == 202, accepted.text
    assert finished(client, accepted.json()["job_id"])["status"] == "succeeded"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert serve_replicas() == replicas_before
