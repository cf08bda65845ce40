"""The trust boundary through the served app, two tenants, on both storage backends.

Each test stands for an attack that once worked (docs/RELIABILITY.md lists them):
reaching an upload's reservation record through a signed URL, using another tenant's
upload, storing more than an upload declared, re-labelling a signed download, making
``input.url`` reach loopback through IPv6 forms of it or a malformed port, and one
tenant holding every live-session slot. FFmpeg opening other files is covered by the
corpus of ``test_bad_input.py``, through every input form.

Tenant isolation end to end (on S3 as on local disk): another key gets 404 for a job, its
events, its deletion and its upload (as input of either job kind), never sees it listed,
and neither the result cache nor an ``Idempotency-Key`` crosses tenants.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect

from config import Settings
from deployments.app import compose
from pipelines import audio
from tests.audio_factory import sine_mix
from tests.s3server import S3Server
from tests.serve.conftest import serve_args
from tests.serving import Stage, follow_job

pytestmark = [pytest.mark.serve, pytest.mark.timeout(400)]

KEYS = {"acme": "acme-key-0123456789abcdef", "beta": "beta-key-0123456789abcdef"}


@pytest.fixture(scope="module", params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def base_url(
    backend: str,
    stage: Stage,
    s3_server: S3Server,
    serve_model_repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    keys = ",".join(f"{tenant}:{key}" for tenant, key in KEYS.items())
    if backend == "s3":
        settings = s3_server.settings(bucket="boundary", api_keys=keys)
    else:
        data = tmp_path_factory.mktemp("boundary-data")
        settings = Settings(storage_backend="local", data_dir=data, api_keys=keys)
    args = serve_args(
        serve_model_repo,
        demucs_worker={"num_replicas": 1, "num_gpus": 0.5, "num_cpus": 0.1, "threads": 1},
        streaming={"max_sessions_per_tenant": 1},
    )
    return stage.ensure(f"boundary-{backend}", lambda: compose(args, settings))


def tenant(base_url: str, name: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {KEYS[name]}"}
    return httpx.Client(base_url=base_url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def acme(base_url: str) -> Iterator[httpx.Client]:
    with tenant(base_url, "acme") as client:
        yield client


@pytest.fixture(scope="module")
def beta(base_url: str) -> Iterator[httpx.Client]:
    with tenant(base_url, "beta") as client:
        yield client


@pytest.fixture(scope="module")
def clip() -> bytes:
    return audio.encode(sine_mix(1.5, 44100, seed=5), 44100, format="wav")


def reserve(client: httpx.Client, filename: str, size: int) -> dict[str, Any]:
    response = client.post("/v1/uploads", json={"filename": filename, "bytes": size})
    assert response.status_code == 201, response.text
    return dict(response.json())


def put(upload: dict[str, Any], data: bytes, url: str | None = None) -> httpx.Response:
    return httpx.put(url or upload["put_url"], content=data, headers=upload["headers"])


def separate_upload(client: httpx.Client, upload_id: str) -> httpx.Response:
    body = {"input": {"upload_id": upload_id}, "stems": ["drums"], "shifts": 0}
    return client.post("/v1/separations", json=body)


def error_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.fixture(scope="module")
def separated(acme: httpx.Client, clip: bytes) -> dict[str, Any]:
    """A job on acme's own upload, after an attempt to forge its reservation record."""
    upload = reserve(acme, "song.wav", len(clip))
    assert urlsplit(upload["put_url"]).path.endswith(f"/uploads/{upload['upload_id']}/input")
    forged = json.dumps({"key": "uploads/x/input", "filename": "/tmp/owned.py", "owner": "acme"})
    meta_url = upload["put_url"].replace("/input?", "/upload.json?", 1)
    assert put(upload, forged.encode(), meta_url).status_code == 403
    assert put(upload, clip).status_code == 200
    accepted = separate_upload(acme, upload["upload_id"])
    assert accepted.status_code == 202, accepted.text
    return follow_job(acme, accepted.json())


def test_the_reservation_record_is_out_of_reach(separated: dict[str, Any]) -> None:
    assert separated["status"] == "succeeded", separated.get("error")
    assert set(separated["result"]["outputs"]) == {"drums"}
    assert not Path("/tmp/owned.py").exists()


def test_reserved_upload_names_are_refused(acme: httpx.Client) -> None:
    for name in ("upload.json", "input", "UPLOAD.JSON"):
        response = acme.post("/v1/uploads", json={"filename": name, "bytes": 100})
        assert error_code(response) == (400, "invalid_request"), name
        assert "reserved" in response.json()["error"]["message"]


def test_another_tenants_upload_is_not_found(
    acme: httpx.Client, beta: httpx.Client, clip: bytes
) -> None:
    upload = reserve(beta, "theirs.wav", len(clip))
    assert put(upload, clip).status_code == 200
    assert error_code(separate_upload(acme, upload["upload_id"])) == (404, "not_found")


def test_more_than_was_reserved_never_reaches_a_job(
    backend: str, acme: httpx.Client, clip: bytes
) -> None:
    upload = reserve(acme, "small.wav", len(clip) // 2)
    stored = put(upload, clip)
    if backend == "local":  # the ingress receives the bytes and stops at the declared size
        assert error_code(stored) == (413, "payload_too_large")
    else:  # S3 takes the PUT; the job request finds the excess and deletes the object
        assert stored.status_code == 200
        assert error_code(separate_upload(acme, upload["upload_id"])) == (
            413,
            "payload_too_large",
        )
    again = separate_upload(acme, upload["upload_id"])
    assert error_code(again) == (400, "invalid_request")
    assert "no data yet" in again.json()["error"]["message"]


def test_a_signed_download_cannot_be_relabelled(separated: dict[str, Any]) -> None:
    url = separated["result"]["outputs"]["drums"]["url"]
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    name = "filename" if "filename" in query else "response-content-disposition"
    assert httpx.get(url).status_code == 200
    query[name] = query[name].replace("drums", "invoice")
    relabelled = parts._replace(query=urlencode(query)).geturl()
    assert httpx.get(relabelled).status_code == 403


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a.wav",
        "http://[::ffff:127.0.0.1]:9/a.wav",
        "http://[::ffff:7f00:1]:9/a.wav",
        "http://[64:ff9b::7f00:1]:9/a.wav",
        "http://[2002:7f00:1::1]:9/a.wav",
        "http://[::127.0.0.1]:9/a.wav",
        "http://example.com:99999/a.wav",
        "http://[::1/a.wav",
    ],
)
def test_internal_and_malformed_urls_are_refused(acme: httpx.Client, url: str) -> None:
    response = acme.post("/v1/separations", json={"input": {"url": url}})
    assert error_code(response) == (400, "invalid_request"), response.text
    assert response.json()["error"]["details"] == {"field": "input.url"}


def test_a_name_resolving_to_a_private_address_is_refused(acme: httpx.Client) -> None:
    """What the serve tier's app, which allows private URLs, fetches (test_url_input.py)."""
    response = acme.post("/v1/separations", json={"input": {"url": "http://localhost:9/a.wav"}})
    assert error_code(response) == (400, "invalid_request"), response.text
    assert "non-public address" in response.json()["error"]["message"]


async def first_message(url: str) -> tuple[dict[str, Any], Any]:
    async with connect(url) as ws:
        message = json.loads(await ws.recv())
        if message["type"] != "ready":
            closed = json.loads(await ws.recv())
            assert closed["type"] == "closed"
            await ws.wait_closed()
            return message, ws.close_code
        return message, None


def test_one_tenant_cannot_hold_every_live_slot(base_url: str) -> None:
    def ws(name: str) -> str:
        return (
            base_url.replace("http://", "ws://") + f"/v1/stream/transcriptions?token={KEYS[name]}"
        )

    async def scenario() -> None:
        async with connect(ws("acme")) as held:
            assert json.loads(await held.recv())["type"] == "ready"
            refused, code = await first_message(ws("acme"))
            assert (refused["type"], refused["code"], code) == ("error", "too_many_sessions", 1013)
            other, _ = await first_message(ws("beta"))
            assert other["type"] == "ready"

    asyncio.run(scenario())


def test_jobs_events_and_listings_are_the_owners_alone(
    acme: httpx.Client, beta: httpx.Client, separated: dict[str, Any]
) -> None:
    job_id = separated["job_id"]
    assert acme.get(f"/v1/jobs/{job_id}").status_code == 200
    assert error_code(beta.get(f"/v1/jobs/{job_id}")) == (404, "not_found")
    assert error_code(beta.get(f"/v1/jobs/{job_id}/events")) == (404, "not_found")
    assert job_id in {job["job_id"] for job in acme.get("/v1/jobs").json()["jobs"]}
    assert job_id not in {job["job_id"] for job in beta.get("/v1/jobs").json()["jobs"]}
    with httpx.Client(base_url=str(acme.base_url), timeout=30) as anonymous:
        assert error_code(anonymous.get(f"/v1/jobs/{job_id}")) == (401, "unauthorized")


def test_another_tenant_cannot_delete_a_job_or_its_outputs(
    acme: httpx.Client, beta: httpx.Client, separated: dict[str, Any]
) -> None:
    job_id = separated["job_id"]
    assert error_code(beta.delete(f"/v1/jobs/{job_id}")) == (404, "not_found")
    fresh = acme.get(f"/v1/jobs/{job_id}").json()  # URLs signed anew
    assert fresh["status"] == "succeeded"
    assert httpx.get(fresh["result"]["outputs"]["drums"]["url"]).status_code == 200


def test_another_tenants_upload_cannot_be_transcribed(
    acme: httpx.Client, beta: httpx.Client, clip: bytes
) -> None:
    upload = reserve(beta, "theirs.wav", len(clip))
    assert put(upload, clip).status_code == 200
    body = {"input": {"upload_id": upload["upload_id"]}}
    assert error_code(acme.post("/v1/transcriptions", json=body)) == (404, "not_found")


def test_result_cache_and_idempotency_keys_are_per_tenant(
    acme: httpx.Client, beta: httpx.Client, clip: bytes
) -> None:
    """The same input, parameters and Idempotency-Key from another tenant is a new job."""
    form = {"stems": "bass", "shifts": "0", "cache": "true"}

    def submit(client: httpx.Client, key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else {}
        files = {"file": ("same.wav", clip)}
        accepted = client.post("/v1/separations", files=files, data=form, headers=headers)
        assert accepted.status_code == 202, accepted.text
        return follow_job(client, accepted.json())

    first = submit(acme, "shared-key")
    assert (first["status"], first["cached"]) == ("succeeded", False), first["error"]
    repeated = submit(acme)
    assert repeated["cached_from"] == first["job_id"]  # the cache does answer its owner
    theirs = submit(beta, "shared-key")
    assert theirs["job_id"] not in (first["job_id"], repeated["job_id"])
    assert (theirs["status"], theirs["cached"]) == ("succeeded", False), theirs["error"]
