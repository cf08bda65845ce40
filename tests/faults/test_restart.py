"""The whole Serve application deleted and deployed again: no accepted job is lost."""

from __future__ import annotations

import time

import httpx
import pytest

from pipelines.jobs import JobRecord, JobStatus, JobStore, new_job_id
from tests.faults.conftest import STALE_AFTER, FaultApp, Reference, stems_of

pytestmark = pytest.mark.faults


def orphan(app: FaultApp, like: JobRecord) -> str:
    """A job accepted (its record written) whose hand-over to a coordinator never happened."""
    job = JobRecord(
        job_id=new_job_id(),
        kind=like.kind,
        owner=like.owner,
        params=like.params,
        input=like.input,
        created_at=time.time() - STALE_AFTER,
        info={k: v for k, v in like.info.items() if k in ("seed", "model")},
    )
    JobStore(app.storage).save(job)
    return job.job_id


def test_restart_keeps_every_job(app: FaultApp, client: httpx.Client, reference: Reference) -> None:
    finished = app.submit(client, 3.0)
    app.finished(client, finished)
    interrupted = app.submit(client, reference.seconds)
    app.running(client, interrupted, progress=0.2)
    before = {view["job_id"]: view["status"] for view in client.get("/v1/jobs").json()["jobs"]}
    assert before[finished] == "succeeded" and before[interrupted] == "running"
    orphans: list[str] = []

    app.restart(meanwhile=lambda: orphans.append(orphan(app, app.record(interrupted))))

    queued = orphans[0]

    after = {view["job_id"]: view["status"] for view in client.get("/v1/jobs").json()["jobs"]}
    assert set(before) <= set(after)
    assert all(after[j] == s for j, s in before.items() if s not in ("queued", "running"))
    assert stems_of(app.finished(client, interrupted)) == reference.stems
    assert stems_of(app.finished(client, queued)) == reference.stems
    assert app.record(interrupted).attempts == 2 and app.lease(interrupted).generation == 2
    assert app.record(queued).attempts == 1
    assert app.record(finished).status is JobStatus.SUCCEEDED
