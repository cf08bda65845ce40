"""Retention: the coordinators' sweeper deletes finished jobs and old uploads, and
nothing a job still needs."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from pipelines import audio
from tests.audio_factory import sine_mix
from tests.faults.conftest import JOB_PARAMS, RATE, FaultApp

pytestmark = pytest.mark.faults

RETENTION_SECONDS = 3.0


def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the sweeper never got there"
        time.sleep(0.5)


def upload(client: httpx.Client, seconds: float) -> str:
    data = audio.encode(sine_mix(seconds, RATE, seed=4), RATE, format="flac")
    reserve = {"filename": "a.flac", "content_type": "audio/flac", "bytes": len(data)}
    reserved = client.post("/v1/uploads", json=reserve).json()
    put = httpx.put(reserved["put_url"], content=data, headers=reserved["headers"], timeout=30)
    assert put.status_code == 200, put.text
    return str(reserved["upload_id"])


def test_expired_jobs_and_uploads_are_swept(fault_app: FaultApp, client: httpx.Client) -> None:
    app = fault_app
    app.ensure("retention", retention_hours=RETENTION_SECONDS / 3600, sweep_interval_seconds=1)
    unused = upload(client, 1.0)
    used = upload(client, 45.0)
    uploaded = time.monotonic()
    accepted = client.post("/v1/separations", json={"input": {"upload_id": used}, **JOB_PARAMS})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    eventually(lambda: app.keys(f"uploads/{unused}/") == [])
    time.sleep(max(0.0, uploaded + RETENTION_SECONDS + 2 - time.monotonic()))
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    assert app.keys(f"uploads/{used}/"), "the input of a running job was swept"
    done = app.finished(client, job_id)
    assert done["status"] == "succeeded", done
    eventually(lambda: app.keys(f"jobs/{job_id}/") == [] and app.keys(f"uploads/{used}/") == [])
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404
