"""The S3 server stopped in the middle of a job: ridden out within the retry budget,
a clean ``storage_unavailable`` failure past it, never ``succeeded`` with missing files."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults.conftest import STORAGE_BUDGET, FaultApp, Reference, stems_of

pytestmark = pytest.mark.faults


def outage(app: FaultApp, seconds: float) -> float:
    """Kill the S3 server for about ``seconds`` (its start included). Killed, not stopped:
    a graceful stop waits for the coordinators' open requests (up to 15 s), longer than
    the outage this stands for."""
    began = time.monotonic()
    app.s3.stop(kill=True)
    time.sleep(max(0.0, seconds - (time.monotonic() - began) - 1.0))  # starting takes ~1 s
    app.s3.start()
    return time.monotonic() - began


def test_short_outage_is_ridden_out(
    app: FaultApp, client: httpx.Client, reference: Reference
) -> None:
    job_id = app.submit(client, reference.seconds)
    app.running(client, job_id, progress=0.2)
    lasted = outage(app, 3.0)
    assert lasted < STORAGE_BUDGET
    done = app.finished(client, job_id)
    assert stems_of(done) == reference.stems  # every listed output is there, whole
    assert app.record(job_id).attempts == 1


def test_outage_past_the_budget_fails_the_job(app: FaultApp, client: httpx.Client) -> None:
    job_id = app.submit(client, 30.0)
    app.running(client, job_id, progress=0.2)
    lasted = outage(app, STORAGE_BUDGET + 3.0)
    assert lasted > STORAGE_BUDGET
    done = app.finished(client, job_id)
    assert done["status"] == "failed" and done["result"] is None, done
    assert done["error"]["code"] == "storage_unavailable"
    assert "unavailable" in done["error"]["message"]
    record = app.record(job_id)
    assert record.attempts == 1 and record.finished_at is not None
