"""Signed callbacks and the result cache through the HTTP API, jobs run in-process.

The callback receiver is a real HTTP server on a free loopback port; its requests are
verified with the Standard Webhooks reference library.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook
from starlette.testclient import TestClient

from config import JobsArgs, Settings
from deployments.api import Services, create_api
from deployments.api.urls import files_url
from pipelines import audio
from pipelines.jobs import JobStore
from pipelines.jobs.scratch import ScratchSpace
from pipelines.separation import Separator
from pipelines.storage import LocalStorage, open_storage
from tests.api.conftest import make_args
from tests.audio_factory import sine_mix
from tests.fakes import InProcessLauncher, InProcessTranscriber
from tests.receiver import Receiver
from tests.serving import follow_job

pytestmark = pytest.mark.api

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY_A = "a" * 24
KEY_B = "b" * 24


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def hooked(
    tmp_path_factory: pytest.TempPathFactory,
    model_repo: Path,
    separators: dict[str, Separator],
    transcriber: InProcessTranscriber,
) -> Services:
    """Callbacks signed with SECRET to loopback addresses; quick retries; two tenants."""
    settings = Settings(
        storage_backend="local",
        data_dir=tmp_path_factory.mktemp("data"),
        scratch_dir=tmp_path_factory.mktemp("scratch"),
        webhook_secret=SecretStr(SECRET),
        allow_private_urls=True,
        api_keys=SecretStr(f"acme:{KEY_A},beta:{KEY_B}"),
    )
    storage = open_storage(settings, files_url=files_url(settings))
    assert isinstance(storage, LocalStorage)
    jobs_args = JobsArgs(callback_backoff_seconds=0.05, callback_attempts=3)
    args = make_args(model_repo).model_copy(update={"jobs": jobs_args})
    jobs = JobStore(storage)
    scratch = ScratchSpace(settings.scratch_dir)
    launcher = InProcessLauncher(jobs, args, separators, transcriber, scratch, settings)
    return Services(args, settings, storage, jobs, launcher, transcriber, signer=storage.url_signer)


@pytest.fixture(scope="module")
def acme(hooked: Services) -> Iterator[TestClient]:
    with TestClient(create_api(hooked), headers={"Authorization": f"Bearer {KEY_A}"}) as c:
        yield c


@pytest.fixture(scope="module")
def beta(hooked: Services) -> Iterator[TestClient]:
    with TestClient(create_api(hooked), headers={"Authorization": f"Bearer {KEY_B}"}) as c:
        yield c


@pytest.fixture(scope="module")
def clip() -> bytes:
    return audio.encode(sine_mix(1.0, 44100, channels=2, seed=21), 44100, format="wav")


def submit(client: TestClient, data: bytes, **fields: Any) -> dict[str, Any]:
    form = {"stems": "drums", **{k: str(v) for k, v in fields.items()}}
    response = client.post("/v1/separations", files={"file": ("clip.wav", data)}, data=form)
    assert response.status_code == 202, response.text
    return dict(response.json())


def settled(client: TestClient, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """The job view once its callback is no longer pending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = dict(client.get(f"/v1/jobs/{job_id}").json())
        if view["callback"]["state"] != "pending":
            return view
        time.sleep(0.1)
    raise AssertionError(f"callback of {job_id} still pending: {view['callback']}")


def test_a_finished_job_posts_one_signed_callback(
    acme: TestClient, receiver: Receiver, clip: bytes
) -> None:
    job = submit(acme, clip, callback_url=receiver.url, seed=1)
    assert job["callback"] == {"url": receiver.url, "state": "pending", "attempts": []}
    view = settled(acme, job["job_id"])
    assert view["status"] == "succeeded"
    assert view["callback"]["state"] == "delivered"
    assert [a["status_code"] for a in view["callback"]["attempts"]] == [204]
    headers, body = receiver.received[-1]
    message = Webhook(SECRET).verify(body, headers)  # raises unless the signature holds
    assert headers["webhook-id"] == f"msg_{job['job_id']}"
    assert message["type"] == "job.succeeded"
    assert message["data"] == message["data"] | {"job_id": job["job_id"], "status": "succeeded"}
    with pytest.raises(Exception, match="No matching signature"):
        Webhook("whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUE=").verify(body, headers)


def test_a_receiver_error_is_retried(acme: TestClient, receiver: Receiver, clip: bytes) -> None:
    receiver.script[:] = [500]
    job = submit(acme, clip, callback_url=receiver.url, seed=2)
    view = settled(acme, job["job_id"])
    assert view["callback"]["state"] == "delivered"
    assert [a["status_code"] for a in view["callback"]["attempts"]] == [500, 204]
    ids = [h["webhook-id"] for h, _ in receiver.received[-2:]]
    assert ids == [f"msg_{job['job_id']}"] * 2
    for headers, body in receiver.received[-2:]:
        Webhook(SECRET).verify(body, headers)


def test_a_private_target_is_refused_without_the_allow_flag(
    hooked: Services, receiver: Receiver, clip: bytes
) -> None:
    strict = replace(
        hooked, settings=hooked.settings.model_copy(update={"allow_private_urls": False})
    )
    with TestClient(create_api(strict), headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        for url in (receiver.url, "http://10.0.0.7/hook", "http://[::ffff:127.0.0.1]/x"):
            response = client.post(
                "/v1/separations",
                files={"file": ("clip.wav", clip)},
                data={"callback_url": url},
            )
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert error["details"] == {"field": "callback_url"}
            assert "non-public address" in error["message"]


def test_callbacks_need_a_secret_and_a_url(hooked: Services, clip: bytes) -> None:
    unsigned = replace(hooked, settings=hooked.settings.model_copy(update={"webhook_secret": None}))
    with TestClient(create_api(unsigned), headers={"Authorization": f"Bearer {KEY_A}"}) as client:
        response = client.post(
            "/v1/separations",
            files={"file": ("clip.wav", clip)},
            data={"callback_url": "https://hooks.example.com/x"},
        )
        assert response.status_code == 400
        assert "STEMSCRIBE_WEBHOOK_SECRET" in response.json()["error"]["message"]
        response = client.post(
            "/v1/separations",
            json={"input": {"upload_id": "0" * 24}, "callback_url": "ftp://example.com/x"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["details"] == {"field": "callback_url"}


def test_a_repeat_is_answered_from_the_cache(acme: TestClient, clip: bytes) -> None:
    first = follow_job(acme, submit(acme, clip, seed=5))
    assert first["status"] == "succeeded" and first["cached"] is False
    again = submit(acme, clip, seed=5)
    assert again["job_id"] != first["job_id"]
    assert again["status"] == "succeeded" and again["cached"] is True
    assert again["cached_from"] == first["job_id"]
    ours, theirs = again["result"]["outputs"]["drums"], first["result"]["outputs"]["drums"]
    assert ours["bytes"] == theirs["bytes"]
    assert acme.get(ours["url"]).content == acme.get(theirs["url"]).content
    fresh = submit(acme, clip, seed=5, cache="false")
    assert fresh["status"] == "queued" and fresh["cached"] is False
    assert follow_job(acme, fresh)["status"] == "succeeded"


def test_a_changed_parameter_or_another_tenant_misses(
    acme: TestClient, beta: TestClient, clip: bytes
) -> None:
    assert follow_job(acme, submit(acme, clip, seed=6))["status"] == "succeeded"
    assert submit(acme, clip, seed=6)["cached"] is True
    for change in ({"seed": 7}, {"format": "flac"}):  # every parameter: tests/unit
        missed = submit(acme, clip, **({"seed": 6} | change))
        assert missed["cached"] is False, change
        follow_job(acme, missed)
    theirs = submit(beta, clip, seed=6)
    assert theirs["cached"] is False
    assert follow_job(beta, theirs)["status"] == "succeeded"


def test_a_cached_job_delivers_its_callback_too(
    acme: TestClient, receiver: Receiver, clip: bytes
) -> None:
    follow_job(acme, submit(acme, clip, seed=9))
    again = submit(acme, clip, seed=9, callback_url=receiver.url)
    assert again["cached"] is True
    view = settled(acme, again["job_id"])
    assert view["callback"]["state"] == "delivered"
    headers, body = receiver.received[-1]
    assert Webhook(SECRET).verify(body, headers)["data"]["cached"] is True
