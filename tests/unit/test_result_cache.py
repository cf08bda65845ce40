"""The result cache: keys, hits, misses, tenants, expiry, and retention of repeats."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.jobs import JobRecord, JobStatus, JobStore, OutputFile, new_job_id, output_key
from pipelines.jobs.cache import ResultCache, cache_key, repeat
from pipelines.jobs.janitor import Janitor
from pipelines.storage import LocalStorage
from pipelines.storage.signing import UrlSigner

pytestmark = pytest.mark.unit

PARAMS: dict[str, Any] = {
    "model": "htdemucs", "stems": None, "two_stems": None, "format": "wav", "bit_depth": 16,
    "mp3_bitrate": 320, "shifts": 1, "overlap": 0.25, "clip": "rescale", "seed": 7,
}  # fmt: skip
DIGEST = "ab" * 32
RETENTION = 3600.0


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(LocalStorage(tmp_path, UrlSigner(b"k" * 32), 60))


def succeeded(store: JobStore, owner: str = "acme", params: dict[str, Any] = PARAMS) -> JobRecord:
    job_id = new_job_id()
    key = output_key(job_id, "vocals.wav")
    store.storage.put(key, b"RIFF....", "audio/wav")
    record = JobRecord(job_id, "separation", owner, dict(params), {"key": "uploads/x/input"})
    record.status, record.finished_at = JobStatus.SUCCEEDED, time.time()
    record.outputs = [OutputFile("vocals", key, 8, "audio/wav", "vocals.wav")]
    record.cache_key = cache_key(owner, "separation", DIGEST, params)
    store.save(record)
    ResultCache(store, RETENTION).remember(record)
    return record


def test_the_same_request_hits(store: JobStore) -> None:
    earlier = succeeded(store)
    cache = ResultCache(store, RETENTION)
    key = cache_key("acme", "separation", DIGEST, dict(PARAMS))
    found = cache.lookup("acme", key)
    assert found is not None and found.job_id == earlier.job_id


@pytest.mark.parametrize(
    "change",
    [{"model": "htdemucs_ft"}, {"format": "flac"}, {"bit_depth": 24}, {"shifts": 2},
     {"overlap": 0.5}, {"clip": "none"}, {"seed": 8}, {"seed": None}, {"two_stems": "vocals"},
     {"stems": ["vocals"]}, {"mp3_bitrate": 128}],
)  # fmt: skip
def test_any_changed_parameter_misses(store: JobStore, change: dict[str, Any]) -> None:
    succeeded(store)
    key = cache_key("acme", "separation", DIGEST, PARAMS | change)
    assert ResultCache(store, RETENTION).lookup("acme", key) is None


def test_other_input_bytes_or_kind_miss(store: JobStore) -> None:
    succeeded(store)
    cache = ResultCache(store, RETENTION)
    assert cache.lookup("acme", cache_key("acme", "separation", "cd" * 32, PARAMS)) is None
    assert cache.lookup("acme", cache_key("acme", "lyrics", DIGEST, PARAMS)) is None


def test_never_across_tenants(store: JobStore) -> None:
    earlier = succeeded(store, owner="acme")
    cache = ResultCache(store, RETENTION)
    # Neither under the other tenant's own key, nor by presenting acme's key.
    assert cache.lookup("beta", cache_key("beta", "separation", DIGEST, PARAMS)) is None
    assert cache.lookup("beta", earlier.cache_key or "") is None


def test_entries_expire_with_retention(store: JobStore) -> None:
    earlier = succeeded(store)
    cache = ResultCache(store, RETENTION)
    key = earlier.cache_key or ""
    assert cache.lookup("acme", key, now=time.time() + RETENTION - 60) is not None
    assert cache.lookup("acme", key, now=time.time() + RETENTION + 1) is None
    assert cache.expire(now=time.time() + RETENTION + 1) == 1
    assert cache.lookup("acme", key) is None  # the entry itself is gone


def test_a_job_with_missing_files_or_deleted_misses(store: JobStore) -> None:
    earlier = succeeded(store)
    cache = ResultCache(store, RETENTION)
    store.storage.delete(earlier.outputs[0].key)
    assert cache.lookup("acme", earlier.cache_key or "") is None
    other = succeeded(store)
    cache.forget(other)
    assert cache.lookup("acme", other.cache_key or "") is None


def test_a_repeat_lists_the_earlier_outputs_and_expires_with_it(store: JobStore) -> None:
    earlier = succeeded(store)
    earlier.finished_at = time.time() - RETENTION + 30
    store.save(earlier)
    request = JobRecord(
        new_job_id(), "separation", "acme", dict(PARAMS), {"key": "uploads/y/input"}
    )
    answered = repeat(earlier, request)
    store.save(answered)
    assert answered.status is JobStatus.SUCCEEDED and answered.cached_from == earlier.job_id
    assert answered.outputs == earlier.outputs and answered.job_id != earlier.job_id
    janitor = Janitor(store, stale_after=60, retention=RETENTION)
    assert janitor.sweep(time.time()).jobs == 0
    assert janitor.sweep(time.time() + 60).jobs == 2  # the repeat goes with its source
