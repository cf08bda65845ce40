"""Job records, the runner's lifecycle and staged progress, over real local storage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pipelines.errors import InvalidRequest
from pipelines.jobs import JobRecord, JobStatus, JobStore, new_job_id
from pipelines.jobs.context import JobContext
from pipelines.jobs.lifecycle import run_job
from pipelines.storage import LocalStorage
from pipelines.storage.signing import UrlSigner

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(LocalStorage(tmp_path, UrlSigner(b"k" * 32), 60))


def record() -> JobRecord:
    return JobRecord(job_id=new_job_id(), kind="separation", owner="a", params={}, input={})


def test_record_round_trip_and_owner_scoping(store: JobStore) -> None:
    job = record()
    store.save(job)
    assert store.get(job.job_id) == job
    assert store.get(job.job_id, owner="a").status is JobStatus.QUEUED
    with pytest.raises(Exception, match="No job"):
        store.get(job.job_id, owner="b")
    with pytest.raises(Exception, match="No job"):
        store.get("../etc")


def test_listing_is_newest_first(store: JobStore) -> None:
    ids = []
    for _ in range(3):
        job = record()
        store.save(job)
        ids.append(job.job_id)
    assert [r.job_id for r in store.list("a")] == ids[::-1]
    assert list(store.list("b")) == []


def test_success_writes_outputs_before_the_record(store: JobStore) -> None:
    job = record()
    store.save(job)
    seen: list[str] = []

    async def body(ctx: JobContext) -> None:
        output = await ctx.write_output("a", "a.txt", b"hello", "text/plain")
        ctx.record.outputs.append(output)
        seen.append(store.get(job.job_id).status.value)  # still running while outputs land
        with ctx.stage(0.0, 0.7):
            await ctx.progress(1.0)
        assert ctx.record.progress == pytest.approx(0.7)
        with ctx.stage(0.7, 1.0):
            await ctx.progress(0.5)
        assert ctx.record.progress == pytest.approx(0.85)

    final = asyncio.run(run_job(store, job, body))
    assert seen == ["running"] and final.status is JobStatus.SUCCEEDED
    stored = store.get(job.job_id)
    assert stored.status is JobStatus.SUCCEEDED and stored.progress == 1.0 and stored.attempts == 1
    assert store.storage.get(stored.outputs[0].key) == b"hello"


def test_domain_errors_fail_the_job_with_their_code(store: JobStore) -> None:
    job = record()

    async def body(ctx: JobContext) -> None:
        raise InvalidRequest("Nope.")

    final = asyncio.run(run_job(store, job, body))
    assert final.status is JobStatus.FAILED and final.error is not None
    assert final.error["code"] == "invalid_request"


def test_unexpected_errors_do_not_leak_details(store: JobStore) -> None:
    job = record()

    async def body(ctx: JobContext) -> None:
        raise RuntimeError("secret internals")

    final = asyncio.run(run_job(store, job, body))
    assert final.error == {
        "code": "internal_error",
        "message": "The job failed unexpectedly.",
        "details": {},
    }


def test_cancel_marker_stops_the_job_and_removes_outputs(store: JobStore) -> None:
    job = record()
    store.save(job)

    async def body(ctx: JobContext) -> None:
        ctx.record.outputs.append(await ctx.write_output("a", "a.txt", b"x", "text/plain"))
        store.request_cancel(job.job_id)
        await asyncio.sleep(1.1)  # past the cancel-check throttle
        await ctx.progress(0.5)

    final = asyncio.run(run_job(store, job, body))
    assert final.status is JobStatus.CANCELLED and final.outputs == []
    assert list(store.storage.list(f"jobs/{job.job_id}/outputs/")) == []
