"""Replicas killed in the middle of a job: the job still ends as if nothing happened."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults.conftest import FaultApp, Reference, stems_of

pytestmark = pytest.mark.faults


def test_worker_killed_mid_job(app: FaultApp, client: httpx.Client, reference: Reference) -> None:
    """Windows in flight on the dead DemucsWorker are sent again; the stems are identical."""
    workers = app.replicas("DemucsWorker")
    assert len(workers) == 2
    job_id = app.submit(client, reference.seconds)
    app.running(client, job_id, progress=0.2)
    app.kill(workers[0])
    done = app.finished(client, job_id)
    assert stems_of(done) == reference.stems
    assert workers[0] not in app.replicas("DemucsWorker")
    assert app.record(job_id).attempts == 1  # recovered inside the job, not by a re-run


def test_coordinator_killed_mid_job(
    app: FaultApp, client: httpx.Client, reference: Reference
) -> None:
    """The reaper hands the job out again once its lease expires; exactly one re-run."""
    job_id = app.submit(client, reference.seconds)
    app.running(client, job_id, progress=0.2)
    holder = app.lease(job_id).owner
    assert holder in app.replicas("JobCoordinator")
    app.kill(holder)
    done = app.finished(client, job_id)
    assert stems_of(done) == reference.stems
    record, lease = app.record(job_id), app.lease(job_id)
    assert record.attempts == 2 and lease.generation == 2  # claimed twice: one run each
    assert lease.owner != holder


def test_coordinator_killed_mid_bag_job_with_shifts(app: FaultApp, client: httpx.Client) -> None:
    """A bag with shifts: the re-run replays the job's stored seed, so its stems are
    byte-identical to an undisturbed run; the killed replica's scratch is swept."""
    params = {"model": "tiny_bag", "shifts": 1, "seed": 5}
    undisturbed = stems_of(app.finished(client, app.submit(client, 12.0, **params)))
    job_id = app.submit(client, 12.0, **params)
    app.running(client, job_id, progress=0.2)
    scratch = app.settings.scratch_dir
    assert (scratch / job_id).is_dir()  # the running job's scratch folder
    app.kill(app.lease(job_id).owner)
    assert stems_of(app.finished(client, job_id)) == undisturbed
    assert app.record(job_id).attempts == 2
    deadline = time.monotonic() + 60
    while any(scratch.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert list(scratch.iterdir()) == []
