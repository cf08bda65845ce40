"""Scratch disk: given back however a job ends, swept after a crash, checked up front."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config import LimitsArgs
from pipelines import audio
from pipelines.errors import InsufficientScratch
from pipelines.jobs import JobRecord, JobStatus, JobStore, SeparationParams, new_job_id
from pipelines.jobs.runner import JobRunner
from pipelines.jobs.scratch import LOCK_NAME, ScratchSpace, separation_cost
from pipelines.jobs.separation import SeparationEngine
from pipelines.jobs.transcription import SegmentStream
from pipelines.separation import BatchOutput, Separator, WindowBatch, load_model, timed_batch
from pipelines.storage import LocalStorage
from pipelines.storage.signing import UrlSigner

pytestmark = pytest.mark.unit


def test_job_folder_is_removed_on_success_and_on_failure(tmp_path: Path) -> None:
    space = ScratchSpace(tmp_path)
    with space.job("a") as scratch:
        (scratch.folder / "big.f32").write_bytes(b"x" * 100)
    with pytest.raises(RuntimeError), space.job("b") as scratch:
        (scratch.folder / "big.f32").write_bytes(b"x")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_sweep_keeps_running_jobs_and_removes_those_of_dead_processes(tmp_path: Path) -> None:
    space = ScratchSpace(tmp_path)
    dead = tmp_path / "dead-job"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(dead)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    later = time.time() + 3600  # past the grace every new folder gets
    with space.job("alive") as scratch:
        assert space.sweep(now=later) == 0  # both locks held
        holder.kill()  # a coordinator killed mid-job: the kernel drops its lock
        holder.wait()
        holder.stdout.close()
        assert space.sweep() == 0  # a folder this young is left alone
        assert space.sweep(now=later) == 1
        assert not dead.exists() and scratch.folder.is_dir()


HOLD_LOCK = """
import fcntl, pathlib, sys, time
folder = pathlib.Path(sys.argv[1]); folder.mkdir()
lock = (folder / ".lock").open("wb"); fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
(folder / "track.f32").write_bytes(b"x" * 1000)
print("locked", flush=True); time.sleep(600)
"""


def test_sweep_leaves_a_young_folder_without_its_lock_yet(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    old = tmp_path / "old"
    old.mkdir()
    assert ScratchSpace(tmp_path).sweep(now=time.time()) == 0
    assert ScratchSpace(tmp_path).sweep(now=time.time() + 3600) == 2
    assert LOCK_NAME == ".lock"


def test_check_names_the_space_needed_and_free(tmp_path: Path) -> None:
    space = ScratchSpace(tmp_path, reserve_bytes=10**15)  # more than any disk
    with pytest.raises(InsufficientScratch) as refused:
        space.check(5 * 1024**3)
    assert refused.value.code == "insufficient_storage"
    assert refused.value.details == {"needed_bytes": 5 * 1024**3, "free_bytes": 0}
    assert "5.00 GiB" in refused.value.message


def test_claims_of_running_jobs_count_against_the_next() -> None:
    cost = separation_cost(44100, 2, 4, "wav", 16, 320)
    hour = cost.bytes_for(3600, 0)
    assert 4 * 1024**3 < hour < 8 * 1024**3  # decoded track and 4 float stems dominate


# --- through the JobRunner ---------------------------------------------------------


class Engines:
    """In-process forward passes; ``gate`` holds windows so a test can act mid-job."""

    def __init__(self, separator: Separator) -> None:
        self.separator = separator
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    async def separation(self, model: str) -> SeparationEngine:
        async def forward(batch: WindowBatch) -> BatchOutput:
            await asyncio.to_thread(self.gate.wait)
            if self.fail:
                raise RuntimeError("worker lost")
            return timed_batch(self.separator.models[batch.sub_model], batch.windows)

        return SeparationEngine(self.separator, forward, batch_size=1, max_inflight=2)

    def transcription(self, model: str) -> SegmentStream:
        raise AssertionError("no transcription here")


@pytest.fixture(scope="module")
def unittest_model() -> Separator:
    return load_model("demucs_unittest")


def setup(
    tmp_path: Path, separator: Separator, **limits: Any
) -> tuple[JobRunner, JobStore, Engines]:
    storage = LocalStorage(tmp_path / "store", UrlSigner(b"k" * 32), 60)
    store = JobStore(storage)
    engines = Engines(separator)
    scratch = ScratchSpace(tmp_path / "scratch", reserve_bytes=limits.pop("reserve", 0))
    runner = JobRunner(store, engines, scratch, LimitsArgs(**limits))
    return runner, store, engines


def submit(store: JobStore, seconds: float = 3.0) -> str:
    data = audio.encode(
        np.random.default_rng(0).standard_normal((2, int(44100 * seconds))).astype(np.float32)
        * 0.1,
        44100,
    )
    store.storage.put("uploads/u/in.wav", data)
    params = SeparationParams(model="demucs_unittest", shifts=0).model_dump()
    record = JobRecord(new_job_id(), "separation", "me", params, {"key": "uploads/u/in.wav"})
    store.save(record)
    return record.job_id


def scratch_left(tmp_path: Path) -> list[Path]:
    root = tmp_path / "scratch"
    return list(root.iterdir()) if root.exists() else []


def test_scratch_is_gone_after_success_failure_and_cancel(
    tmp_path: Path, unittest_model: Separator
) -> None:
    runner, store, engines = setup(tmp_path, unittest_model)

    async def scenario() -> list[JobStatus]:
        ok = await runner.run(submit(store))
        engines.fail = True
        failed = await runner.run(submit(store))
        engines.fail, engines.gate = False, threading.Event()
        job_id = submit(store)
        running = asyncio.create_task(runner.run(job_id))
        while not scratch_left(tmp_path):
            await asyncio.sleep(0.05)
        store.request_cancel(job_id)
        engines.gate.set()
        return [ok, failed, await running]

    statuses = asyncio.run(scenario())
    assert statuses == [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED]
    assert scratch_left(tmp_path) == []


def test_job_without_room_fails_with_507_before_any_output(
    tmp_path: Path, unittest_model: Separator
) -> None:
    runner, store, _ = setup(tmp_path, unittest_model, reserve=10**15)
    job_id = submit(store)
    assert asyncio.run(runner.run(job_id)) is JobStatus.FAILED
    record = store.get(job_id)
    assert record.error is not None and record.error["code"] == "insufficient_storage"
    assert record.error["details"]["needed_bytes"] > 0
    assert record.outputs == [] and scratch_left(tmp_path) == []
    assert not list(store.storage.list(f"jobs/{job_id}/outputs/"))


def test_unknown_job_kind_fails_the_job(tmp_path: Path, unittest_model: Separator) -> None:
    runner, store, _ = setup(tmp_path, unittest_model)
    record = JobRecord(new_job_id(), "karaoke", "me", {}, {"key": "uploads/u/in.wav"})
    store.save(record)
    assert asyncio.run(runner.run(record.job_id)) is JobStatus.FAILED
    error = store.get(record.job_id).error
    assert error is not None and error["code"] == "unknown_job_kind"
