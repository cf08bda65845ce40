"""API keys and tenants, limits and overload, and the HTTP hardening around the API."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from ray.serve.exceptions import BackPressureError
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.testclient import TestClient
from starlette.types import Message

from config import Settings
from deployments.api import Services, create_api
from deployments.api.auth import needs_key
from deployments.api.intake import safe_filename
from deployments.api.ratelimit import TokenBucket
from deployments.overload import refuse_overload
from pipelines import audio
from pipelines.errors import InvalidRequest, Overloaded
from pipelines.jobs.idempotency import IdempotencyKeys, IdempotentJob
from pipelines.storage.base import validate_key
from tests.api.conftest import make_args
from tests.audio_factory import sine_mix
from tests.serving import follow_job

pytestmark = pytest.mark.api

KEY_A = "acme-" + "a1" * 12
KEY_B = "beta-" + "b2" * 12
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
WS_URL = "/v1/stream/transcriptions"
OPEN_ROUTES = {
    "/healthz",
    "/readyz",
    "/health",
    "/",
    "/static/{name}",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}
"""Routes anyone may call; everything else lives under ``/v1`` (or is a seed route of
``deployments/api/compat``) and needs a key."""
SIGNED_PREFIX = "/v1/files/"
"""Authorized by the URL's signature instead (see ``deployments/api/auth.py``)."""


@pytest.fixture(scope="module")
def clip_wav() -> bytes:
    return audio.encode(sine_mix(2.0, 44100, channels=2, seed=5), 44100, format="wav")


@pytest.fixture(scope="module")
def secured(services: Services, model_repo: Path) -> Services:
    keys = SecretStr(f"acme:{KEY_A}, beta:{KEY_B}")
    settings = services.settings.model_copy(update={"api_keys": keys})
    args = make_args(model_repo, max_active_jobs_per_tenant=2)
    return replace(services, settings=settings, args=args)


@pytest.fixture(scope="module")
def app(secured: Services) -> Any:
    return create_api(secured)


@pytest.fixture(scope="module")
def anon(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def acme(app: Any) -> Iterator[TestClient]:
    with TestClient(app, headers=A) as client:
        yield client


@pytest.fixture(scope="module")
def beta(app: Any) -> Iterator[TestClient]:
    with TestClient(app, headers=B) as client:
        yield client


def flat_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, included routers expanded."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from flat_routes(inner.routes)
        else:
            yield route


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    return dict(body["error"])


def submit(client: TestClient, data: bytes, **headers: str) -> Any:
    form = {"stems": "drums", "cache": "false"}  # every request runs: these count runs
    return client.post(
        "/v1/separations", files={"file": ("clip.wav", data)}, data=form, headers=headers
    )


def accepted(client: TestClient, data: bytes) -> dict[str, Any]:
    response = submit(client, data)
    assert response.status_code == 202, response.text
    return dict(response.json())


def ws_refusal(client: TestClient, url: str, **headers: str) -> tuple[list[Message], int]:
    with client.websocket_connect(url, headers=headers) as ws:
        messages = [ws.receive_json()]
        while messages[-1]["type"] != "closed":
            messages.append(ws.receive_json())
        close = ws.receive()
    return messages, close["code"]


# --- keys --------------------------------------------------------------------


def test_every_v1_route_needs_a_key(app: Any, anon: TestClient) -> None:
    wrong = [{}, {"Authorization": "Bearer " + "z" * 30}, {"Authorization": f"Basic {KEY_A}"}]
    checked = 0
    for route in flat_routes(app.routes):
        path = getattr(route, "path", "")
        if path in OPEN_ROUTES:
            continue
        assert path.startswith("/v1/") or needs_key(path), f"{path}: list it in OPEN_ROUTES"
        if path.startswith(SIGNED_PREFIX):
            continue
        url = re.sub(r"\{[^}]+\}", "0123456789abcdef01234567", path)
        for headers in wrong:
            if isinstance(route, WebSocketRoute):
                messages, code = ws_refusal(anon, url, **headers)
                assert (messages[0]["type"], messages[0]["code"], code) == (
                    "error",
                    "unauthorized",
                    1008,
                )
                continue
            for method in getattr(route, "methods", ()):
                response = anon.request(method, url, headers=headers)
                error_of(response, 401, "unauthorized")
                assert response.headers["www-authenticate"] == "Bearer"
        checked += 1
    assert checked >= 10


def test_open_routes_stay_open(anon: TestClient) -> None:
    for url in ("/healthz", "/readyz", "/", "/static/app.js", "/openapi.json"):
        assert anon.get(url).status_code == 200, url


def test_query_token_only_where_headers_are_impossible(anon: TestClient) -> None:
    error_of(anon.get(f"/v1/jobs?token={KEY_A}"), 401, "unauthorized")
    stream = {"Accept": "text/event-stream"}
    unknown = f"/v1/jobs/{'0' * 24}/events"
    error_of(anon.get(f"{unknown}?token={KEY_A}", headers=stream), 404, "not_found")
    error_of(anon.get(f"{unknown}?token=nope", headers=stream), 401, "unauthorized")


def test_tenants_see_only_their_own_jobs(
    anon: TestClient, acme: TestClient, beta: TestClient, clip_wav: bytes
) -> None:
    job = accepted(acme, clip_wav)
    job_id = job["job_id"]
    done = follow_job(acme, job)
    assert done["status"] == "succeeded"
    error_of(beta.get(f"/v1/jobs/{job_id}"), 404, "not_found")
    error_of(beta.get(f"/v1/jobs/{job_id}/events"), 404, "not_found")
    error_of(beta.delete(f"/v1/jobs/{job_id}"), 404, "not_found")
    assert job_id not in [j["job_id"] for j in beta.get("/v1/jobs").json()["jobs"]]
    assert job_id in [j["job_id"] for j in acme.get("/v1/jobs").json()["jobs"]]
    assert acme.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"  # delete refused
    # EventSource cannot set headers: ?token= works there, for its own tenant only.
    stream = {"Accept": "text/event-stream"}
    events = anon.get(f"{job['events_url']}?token={KEY_A}", headers=stream)
    assert events.status_code == 200 and "event: result" in events.text
    error_of(anon.get(f"{job['events_url']}?token={KEY_B}", headers=stream), 404, "not_found")
    # The signed file URL is its own credential: no key, any client.
    link = done["result"]["outputs"]["drums"]["url"]
    assert anon.get(link).status_code == 200
    error_of(anon.get(link.replace("sig=", "sig=f")), 403, "invalid_signature")


def test_uploads_belong_to_their_tenant(
    anon: TestClient, acme: TestClient, beta: TestClient, clip_wav: bytes
) -> None:
    reserved = acme.post("/v1/uploads", json={"filename": "clip.wav", "bytes": len(clip_wav)})
    assert reserved.status_code == 201, reserved.text
    upload = reserved.json()
    assert anon.put(upload["put_url"], content=clip_wav).status_code == 200  # signed: no key
    body = {"input": {"upload_id": upload["upload_id"]}, "stems": ["drums"]}
    error_of(beta.post("/v1/separations", json=body), 404, "not_found")
    response = acme.post("/v1/separations", json=body)
    assert response.status_code == 202, response.text
    assert follow_job(acme, response.json())["status"] == "succeeded"


def test_websocket_needs_a_key(anon: TestClient, acme: TestClient) -> None:
    for url in (WS_URL, f"{WS_URL}?token=not-a-key"):
        messages, code = ws_refusal(anon, url)
        assert [m["type"] for m in messages] == ["error", "closed"]
        assert messages[0]["code"] == "unauthorized" and code == 1008
    for client, url in ((anon, f"{WS_URL}?token={KEY_B}"), (acme, WS_URL)):
        with client.websocket_connect(url) as ws:
            assert ws.receive_json()["type"] == "ready"
            ws.send_json({"type": "close"})
            while ws.receive_json()["type"] != "closed":
                pass


def test_open_mode_warns_once_per_app(
    services: Services, secured: Services, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="deployments.api"):
        create_api(services)
    assert [r for r in caplog.records if "NO API KEYS" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="deployments.api"):
        create_api(secured)
    assert not [r for r in caplog.records if "NO API KEYS" in r.getMessage()]


def test_key_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMSCRIBE_API_KEYS", f"acme:{KEY_A}\n acme:{KEY_B},beta:{'c' * 16}")
    assert Settings().tenant_keys() == {KEY_A: "acme", KEY_B: "acme", "c" * 16: "beta"}
    for bad in ("just-a-key-without-tenant", "acme:short", f"a:{KEY_A},b:{KEY_A}", f"-x:{KEY_A}"):
        monkeypatch.setenv("STEMSCRIBE_API_KEYS", bad)
        with pytest.raises(ValidationError) as caught:
            Settings()
        assert bad.split(":")[-1] not in str(caught.value)  # never echoes a key
    monkeypatch.setenv("STEMSCRIBE_API_KEYS", "")
    assert Settings().tenant_keys() == {}


# --- hardening ---------------------------------------------------------------


def test_security_headers(anon: TestClient, acme: TestClient) -> None:
    for response in (acme.get("/v1/jobs"), anon.get("/v1/jobs"), anon.get("/healthz")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
    page = anon.get("/")
    assert "content-security-policy" in page.headers
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] != "no-store"  # the page's own caching stays


def test_cors_closed_by_default(anon: TestClient) -> None:
    origin = {"Origin": "https://app.example.com"}
    preflight = anon.options("/v1/jobs", headers={**origin, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers
    assert (
        "access-control-allow-origin" not in anon.get("/v1/jobs", headers={**origin, **A}).headers
    )


def test_cors_open_when_configured(secured: Services) -> None:
    origin = "https://app.example.com"
    settings = secured.settings.model_copy(update={"cors_origins": [origin]})
    with TestClient(create_api(replace(secured, settings=settings))) as client:
        preflight = client.options(
            "/v1/separations",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        for headers in (A, {}):  # a refusal is readable by the page too
            response = client.get("/v1/jobs", headers={"Origin": origin, **headers})
            assert response.headers["access-control-allow-origin"] == origin
        assert "retry-after" in response.headers["access-control-expose-headers"].lower()
        evil = client.options(
            "/v1/jobs",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in evil.headers


def test_cors_origins_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEMSCRIBE_CORS_ORIGINS", "https://a.example.com/, https://b.example.com")
    assert Settings().cors_origins == ["https://a.example.com", "https://b.example.com"]


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("..", "input"),
        ("C:\\Users\\me\\..\\song.wav", "song.wav"),
        (".hidden.wav", "hidden.wav"),
        ("a/b/.../my song.wav", "my_song.wav"),
        ("\x00evil.wav", "evil.wav"),
        ("", "input"),
    ],
)
def test_filenames_never_reach_a_path(name: str, safe: str) -> None:
    assert safe_filename(name) == safe
    assert validate_key(f"uploads/0123456789abcdef01234567/{safe}")


def test_storage_keys_cannot_escape(secured: Services) -> None:
    for key in ("../x", "uploads/../../x", "/etc/passwd", "uploads/.hidden", "a\\b", "a//b"):
        with pytest.raises(InvalidRequest):
            validate_key(key)


def test_uploaded_filenames_are_sanitised(
    acme: TestClient, secured: Services, clip_wav: bytes
) -> None:
    evil = "../../../etc/.passwd"
    reserved = acme.post("/v1/uploads", json={"filename": evil, "bytes": len(clip_wav)}).json()
    assert f"/uploads/{reserved['upload_id']}/input?" in reserved["put_url"]  # never the name
    response = acme.post(
        "/v1/separations", files={"file": (evil, clip_wav)}, data={"stems": "drums"}
    )
    assert response.status_code == 202, response.text
    record = secured.jobs.get(response.json()["job_id"])
    assert re.fullmatch(r"uploads/[0-9a-f]{24}/input", record.input["key"])
    assert record.input["filename"] == "passwd"  # a label only
    follow_job(acme, response.json())


def multipart_chunks(size: int, count: int) -> list[bytes]:
    head = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n"
    )
    return [head] + [b"\0" * size] * count


async def call_asgi(
    app: Any, method: str, path: str, chunks: list[bytes], headers: dict[str, str]
) -> tuple[int, int, dict[str, Any]]:
    """(status, body chunks the app read, JSON body) of one request streamed chunk by chunk."""
    received = 0

    async def receive() -> Message:
        nonlocal received
        if received < len(chunks):
            received += 1
            return {"type": "http.request", "body": chunks[received - 1], "more_body": True}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=60)
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    return sent[0]["status"], received, body


@pytest.mark.parametrize(
    "path", ["/v1/separations", "/v1/transcriptions", "/v1/audio/transcriptions"]
)
def test_chunked_body_over_the_limit_is_cut_short(secured: Services, path: str) -> None:
    app = create_api(secured)  # limit: 2 MB (+ 64 KiB of multipart framing)
    headers = {
        **A,
        "Host": "testserver",
        "Content-Type": "multipart/form-data; boundary=XyZ",
        "Transfer-Encoding": "chunked",
    }
    chunks = multipart_chunks(256 * 1024, 80)  # 20 MiB offered
    status, read, body = asyncio.run(call_asgi(app, "POST", path, chunks, headers))
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert read <= 11, f"{read} of {len(chunks)} chunks read"


def test_declared_length_over_the_limit_reads_nothing(secured: Services) -> None:
    app = create_api(secured)
    headers = {**A, "Host": "testserver", "Content-Type": "application/octet-stream"}
    headers["Content-Length"] = str(50 * 1024 * 1024)
    for method, path in (
        ("POST", "/v1/separations"),
        ("PUT", "/v1/files/uploads/0123456789abcdef01234567/x.wav"),
    ):
        status, read, body = asyncio.run(call_asgi(app, method, path, [b"x"], headers))
        assert (status, read, body["error"]["code"]) == (413, 0, "payload_too_large")


# --- limits ------------------------------------------------------------------


def test_token_bucket_refills() -> None:
    bucket = TokenBucket(rate=1.0, capacity=2, now=0.0)
    assert [bucket.take(0.0), bucket.take(0.0)] == [0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(1.0)
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(1.0)  # capped


def test_rate_limit_per_tenant(secured: Services, model_repo: Path) -> None:
    args = make_args(model_repo, requests_per_minute=3)
    with TestClient(create_api(replace(secured, args=args))) as client:
        for _ in range(3):
            assert client.get("/v1/jobs", headers=A).status_code == 200
        over = client.get("/v1/jobs", headers=A)
        error = error_of(over, 429, "rate_limited")
        assert 1 <= int(over.headers["retry-after"]) <= 20
        assert error["details"]["limit_per_minute"] == 3
        assert client.get("/v1/jobs", headers=B).status_code == 200  # its own bucket
        assert client.get("/healthz").status_code == 200  # open routes are not counted
        messages, code = ws_refusal(client, f"{WS_URL}?token={KEY_A}")
        assert messages[0]["code"] == "rate_limited" and code == 1013


def test_active_jobs_cap(
    acme: TestClient, beta: TestClient, secured: Services, clip_wav: bytes
) -> None:
    launcher: Any = secured.launcher
    launcher.gate.clear()  # hold every job mid-run
    try:
        held = [accepted(acme, clip_wav) for _ in range(2)]
        over = submit(acme, clip_wav)
        error_of(over, 429, "too_many_jobs")
        assert int(over.headers["retry-after"]) > 0
        held.append(accepted(beta, clip_wav))  # another tenant's cap is its own
    finally:
        launcher.gate.set()
    for job, client in zip(held, (acme, acme, beta), strict=True):
        assert follow_job(client, job)["status"] == "succeeded"
    assert follow_job(acme, accepted(acme, clip_wav))["status"] == "succeeded"


def test_idempotency_key_returns_the_same_job(
    acme: TestClient, beta: TestClient, secured: Services, clip_wav: bytes
) -> None:
    launcher: Any = secured.launcher
    before = len(launcher.submitted)
    first = submit(acme, clip_wav, **{"Idempotency-Key": "order-42"})
    again = submit(acme, clip_wav, **{"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 202, again.text
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert len(launcher.submitted) == before + 1
    theirs = submit(beta, clip_wav, **{"Idempotency-Key": "order-42"})
    assert theirs.status_code == 202 and theirs.json()["job_id"] != first.json()["job_id"]
    other_kind = acme.post(
        "/v1/transcriptions",
        files={"file": ("clip.wav", clip_wav)},
        headers={"Idempotency-Key": "order-42"},
    )
    error_of(other_kind, 409, "idempotency_conflict")
    error_of(submit(acme, clip_wav, **{"Idempotency-Key": "no spaces"}), 400, "invalid_request")
    follow_job(acme, first.json())
    follow_job(beta, theirs.json())


def test_idempotency_first_claim_wins(secured: Services) -> None:
    keys = IdempotencyKeys(secured.storage)
    first = IdempotentJob("a" * 24, "separation", time.time())
    second = IdempotentJob("b" * 24, "separation", time.time())
    assert keys.claim("t1", "k", first) == first
    assert keys.claim("t1", "k", second) == first
    assert keys.claim("t2", "k", second) == second  # keys are per tenant
    assert keys.claim("t1", "k", second, stale=lambda _: True) == second
    expired = IdempotencyKeys(secured.storage, ttl_seconds=0)
    assert expired.lookup("t1", "k") is None
    assert keys.expire() == 0
    assert expired.expire(now=time.time() + 1) >= 2 and keys.lookup("t1", "k") is None


class OverloadedLauncher:
    """Every handle call is refused, as Serve does once ``max_queued_requests`` is reached."""

    async def submit(self, kind: str, job_id: str) -> None:
        raise BackPressureError(num_queued_requests=8, max_queued_requests=8)

    async def separation_models(self, wait_for: str | None = None) -> dict[str, dict[str, Any]]:
        raise BackPressureError(num_queued_requests=8, max_queued_requests=8, retry_after_s=2.5)


def test_backpressure_is_503_json_with_retry_after(secured: Services, clip_wav: bytes) -> None:
    app = create_api(replace(secured, launcher=OverloadedLauncher()))
    with TestClient(app, headers=A) as client:
        for response in (client.get("/v1/models"), submit(client, clip_wav)):
            error_of(response, 503, "overloaded")
            assert response.headers["retry-after"] == "3"


def test_handle_calls_turn_backpressure_into_overloaded() -> None:
    with pytest.raises(Overloaded) as caught, refuse_overload():
        raise BackPressureError(num_queued_requests=1, max_queued_requests=1)
    assert caught.value.details["retry_after_seconds"] == 5
