"""DELETE on a running job of the served app: work stops and its outputs go."""

from __future__ import annotations

import httpx
import pytest

from tests.faults.conftest import FaultApp

pytestmark = pytest.mark.faults


def test_cancel_a_running_job(app: FaultApp, client: httpx.Client) -> None:
    job_id = app.submit(client, 30.0)
    app.running(client, job_id, progress=0.1)
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 202 and response.json()["cancel_requested"] is True
    done = app.finished(client, job_id, timeout=15)  # the runner polls the marker every second
    assert done["status"] == "cancelled" and done["result"] is None
    assert done["progress"] < 1.0
    assert app.keys(f"jobs/{job_id}/outputs/") == []
    gone = client.delete(f"/v1/jobs/{job_id}")  # a finished job is deleted with its files
    assert gone.status_code == 204
    assert app.keys(f"jobs/{job_id}/") == []
