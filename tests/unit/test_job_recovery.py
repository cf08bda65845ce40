"""Leases, exclusive runs, the reaper's and sweeper's view, retried storage: no Ray."""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path

import pytest

from config import DeploymentArgs, JobsArgs
from pipelines.errors import NotFound, StorageUnavailable
from pipelines.jobs import JobRecord, JobStatus, JobStore, OutputFile, new_job_id
from pipelines.jobs.context import JobContext
from pipelines.jobs.janitor import Janitor
from pipelines.jobs.lease import JobLease, LeaseLost, read_lease
from pipelines.jobs.lifecycle import run_job
from pipelines.jobs.maintenance import Maintenance
from pipelines.jobs.recovery import RecoveryPolicy, run_exclusively
from pipelines.storage import LocalStorage
from pipelines.storage.retrying import RetryingStorage
from pipelines.storage.signing import UrlSigner

pytestmark = pytest.mark.unit

POLICY = RecoveryPolicy(stale_after=60.0, max_attempts=2)


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path, UrlSigner(b"k" * 32), 60)


@pytest.fixture
def store(local: LocalStorage) -> JobStore:
    return JobStore(local)


def saved(store: JobStore, **fields: object) -> JobRecord:
    job = JobRecord(job_id=new_job_id(), kind="separation", owner="a", params={}, input={})
    for name, value in fields.items():
        setattr(job, name, value)
    store.save(job)
    return job


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- conditional writes and leases ----------------------------------------------------


def test_local_put_if_is_compare_and_swap(local: LocalStorage) -> None:
    first = local.put_if("k/lease", b"a", None)
    assert first is not None and local.put_if("k/lease", b"b", None) is None
    second = local.put_if("k/lease", b"c", first)
    assert second is not None and local.put_if("k/lease", b"d", first) is None
    assert local.get_versioned("k/lease") == (b"c", second)
    assert local.put_if("k/missing", b"x", first) is None


def test_one_claim_wins_until_the_lease_expires(local: LocalStorage) -> None:
    clock = Clock()
    first = JobLease.claim(local, "ab", "one", 10.0, clock)
    assert first is not None and JobLease.claim(local, "ab", "two", 10.0, clock) is None
    clock.now += 5
    first.renew()  # now valid until 1015
    clock.now += 9
    assert JobLease.claim(local, "ab", "two", 10.0, clock) is None
    clock.now += 2
    second = JobLease.claim(local, "ab", "two", 10.0, clock)
    assert second is not None and second.state.generation == 2
    with pytest.raises(LeaseLost):
        first.renew()
    first.release()  # a lost lease is not released on the new holder's behalf
    assert read_lease(local, "ab") == second.state
    second.release()
    third = JobLease.claim(local, "ab", "three", 10.0, clock)
    assert third is not None and third.state.generation == 3


def test_a_retried_write_that_landed_counts_as_won(local: LocalStorage) -> None:
    class Flaky(RetryingStorage):
        """The first conditional write lands but reports a failure (a lost reply)."""

        failed = False

        def put_if(
            self, key: str, data: bytes, version: str | None, ctype: str | None = None
        ) -> str | None:
            landed = local.put_if(key, data, version, ctype)
            if not self.failed:
                self.failed = True
                return super().put_if(key, data, version, ctype)  # its own version is gone now
            return landed

    lease = JobLease.claim(Flaky(local, 0.0), "cd", "one", 10.0)
    assert lease is not None and read_lease(local, "cd") == lease.state


# --- running exactly once ---------------------------------------------------------------


def test_concurrent_calls_run_a_job_once(store: JobStore) -> None:
    job = saved(store)
    runs: list[str] = []

    async def run(record: JobRecord, lease: JobLease) -> JobRecord:
        runs.append(lease.state.owner)

        async def body(ctx: JobContext) -> None:
            await asyncio.sleep(0.2)

        return await run_job(store, record, body, lease=lease)

    async def both() -> list[JobStatus]:
        calls = [run_exclusively(store, job.job_id, name, POLICY, run) for name in "xy"]
        return await asyncio.gather(*calls)

    statuses = asyncio.run(both())
    assert len(runs) == 1 and sorted(statuses) == ["queued", "succeeded"]
    assert store.get(job.job_id).status is JobStatus.SUCCEEDED
    assert asyncio.run(run_exclusively(store, job.job_id, "z", POLICY, run)) == "succeeded"
    assert len(runs) == 1


def test_a_job_interrupted_too_often_is_abandoned(store: JobStore) -> None:
    job = saved(store, status=JobStatus.RUNNING, attempts=2)

    async def run(record: JobRecord, lease: JobLease) -> JobRecord:
        raise AssertionError("must not run")

    assert asyncio.run(run_exclusively(store, job.job_id, "x", POLICY, run)) == "failed"
    error = store.get(job.job_id).error
    assert error is not None and error["code"] == "job_abandoned"


def test_a_taken_over_job_stops_without_writing(store: JobStore) -> None:
    job = saved(store)
    lease = JobLease.claim(store.storage, job.job_id, "old", 60.0)
    assert lease is not None

    taken = b'{"owner": "new", "token": "t", "expires_at": 1e12, "generation": 2}'

    async def body(ctx: JobContext) -> None:
        store.storage.put(f"jobs/{job.job_id}/lease", taken)
        await ctx.save(renew=True)
        raise AssertionError("the save above must raise")

    final = asyncio.run(run_job(store, job, body, lease=lease))
    assert final.status is JobStatus.RUNNING
    assert store.get(job.job_id).status is JobStatus.RUNNING  # the new holder's to finish


def test_a_rerun_starts_clean(store: JobStore) -> None:
    old = OutputFile("vocals", "jobs/x/outputs/vocals.wav", 1, "audio/wav", "vocals.wav")
    job = saved(store, status=JobStatus.RUNNING, attempts=1, progress=0.7, outputs=[old])

    async def body(ctx: JobContext) -> None:
        assert ctx.record.progress == 0.0 and ctx.record.outputs == []

    final = asyncio.run(run_job(store, job, body))
    assert final.status is JobStatus.SUCCEEDED and final.attempts == 2


# --- reaper and sweeper -------------------------------------------------------------------


def test_stale_jobs_are_the_silent_unfinished_ones(store: JobStore) -> None:
    now = time.time()
    stale = saved(store, status=JobStatus.RUNNING, heartbeat_at=now - 100)
    saved(store, status=JobStatus.RUNNING, heartbeat_at=now - 1)
    queued = saved(store, created_at=now - 100)
    saved(store, status=JobStatus.SUCCEEDED, finished_at=now - 100)
    janitor = Janitor(store, stale_after=30, retention=None)
    assert set(janitor.stale_jobs(now)) == {stale.job_id, queued.job_id}


def test_sweep_removes_only_what_is_past_retention(store: JobStore, local: LocalStorage) -> None:
    now = time.time()
    old = saved(store, status=JobStatus.SUCCEEDED, finished_at=now - 100)
    local.put(f"jobs/{old.job_id}/outputs/a.wav", b"x")
    fresh = saved(store, status=JobStatus.SUCCEEDED, finished_at=now - 1)
    for key in ("uploads/u1/a.wav", "uploads/u2/b.wav", "uploads/u3/c.wav"):
        local.put(key, b"x")
        os.utime(local.path(key), (now - 100, now - 100))
    os.utime(local.path("uploads/u3/c.wav"), (now, now))
    running = saved(store, status=JobStatus.RUNNING, heartbeat_at=now, created_at=now - 100)
    running.input = {"key": "uploads/u2/b.wav"}
    store.save(running)
    report = Janitor(store, stale_after=30, retention=50).sweep(now)
    assert (report.jobs, report.uploads) == (1, 1)
    assert list(local.list(f"jobs/{old.job_id}/")) == []
    assert store.get(fresh.job_id).status is JobStatus.SUCCEEDED
    assert store.get(running.job_id).status is JobStatus.RUNNING
    assert {o.key for o in local.list("uploads/")} == {"uploads/u2/b.wav", "uploads/u3/c.wav"}
    with pytest.raises(NotFound):
        store.get(old.job_id)


def test_maintenance_resubmits_each_stale_job_once(store: JobStore) -> None:
    stale = saved(store, status=JobStatus.RUNNING, heartbeat_at=time.time() - 100)
    calls: list[str] = []
    gate = asyncio.Event()

    async def resubmit(job_id: str) -> str:
        calls.append(job_id)
        await gate.wait()
        return "succeeded"

    async def passes() -> None:
        janitor = Janitor(store, stale_after=30, retention=None)
        maintenance = Maintenance(janitor, resubmit, reap_interval=1, sweep_interval=60)
        await maintenance.run_once()
        await asyncio.sleep(0)
        await maintenance.run_once()  # still in flight: not handed out twice
        gate.set()
        await asyncio.sleep(0.01)

    asyncio.run(passes())
    assert calls == [stale.job_id]


# --- storage retries --------------------------------------------------------------------


class Outage:
    """A backend that is down for the first ``failures`` calls."""

    def __init__(self, inner: LocalStorage, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> object:
        target = getattr(self.inner, name)

        def call(*args: object, **kwargs: object) -> object:
            if self.failures > 0:
                self.failures -= 1
                raise StorageUnavailable("Object storage is unreachable (EndpointConnectionError).")
            return target(*args, **kwargs)

        return call


def test_retries_ride_out_a_short_outage(local: LocalStorage) -> None:
    sleeps: list[float] = []
    storage = RetryingStorage(Outage(local, 3), 10.0, sleep=sleeps.append)
    data = io.BytesIO(b"prefix-payload")
    data.seek(7)
    assert storage.put("a/b", data) == 7
    assert local.get("a/b") == b"payload"  # rewound to where it started on every retry
    assert sleeps == [0.2, 0.4, 0.8]


def test_past_the_budget_the_outage_is_reported(local: LocalStorage) -> None:
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    storage = RetryingStorage(Outage(local, 100), 5.0, sleep=sleep, clock=clock)
    with pytest.raises(StorageUnavailable) as raised:
        storage.get("a/b")
    assert raised.value.code == "storage_unavailable"
    assert raised.value.details["retried_seconds"] == 5.0 and clock.now == pytest.approx(1005.0)


def test_every_failed_attempt_is_reported_and_budget_zero_fails_at_once(
    local: LocalStorage,
) -> None:
    failed: list[str] = []
    retrying = RetryingStorage(
        Outage(local, 2), 10.0, sleep=lambda _: None, on_failure=failed.append
    )
    local.put("a/b", b"x")
    assert retrying.get("a/b") == b"x" and failed == ["get", "get"]
    failed.clear()
    fail_fast = RetryingStorage(Outage(local, 5), 0, on_failure=failed.append)
    with pytest.raises(StorageUnavailable):
        fail_fast.stat("a/b")
    assert failed == ["stat"]


# --- configuration ------------------------------------------------------------------------


def test_jobs_args_are_checked_and_reach_serve() -> None:
    with pytest.raises(ValueError, match="reaper_interval_seconds"):
        JobsArgs(stale_after_seconds=10, reaper_interval_seconds=30)
    assert JobsArgs(retention_hours=0.5).retention_seconds == 1800
    assert JobsArgs(retention_hours=None).retention_seconds is None
    options = DeploymentArgs(graceful_shutdown_timeout_s=3).serve_options()
    assert options["graceful_shutdown_timeout_s"] == 3
    assert "graceful_shutdown_timeout_s" not in DeploymentArgs().serve_options()
