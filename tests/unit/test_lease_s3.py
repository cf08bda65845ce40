"""Conditional writes and job leases against a real SeaweedFS server."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipelines.jobs.lease import JobLease
from pipelines.storage import S3Storage, open_storage
from tests.s3server import S3Server

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def s3(s3_server: S3Server) -> S3Storage:
    storage = open_storage(s3_server.settings())
    assert isinstance(storage, S3Storage)
    return storage


def test_put_if_is_compare_and_swap(s3: S3Storage) -> None:
    key = f"t-{uuid.uuid4().hex[:12]}/lease"
    first = s3.put_if(key, b"a", None)
    assert first is not None and s3.put_if(key, b"b", None) is None
    second = s3.put_if(key, b"c", first)
    assert second is not None and s3.put_if(key, b"d", first) is None
    assert s3.get_versioned(key) == (b"c", second)
    assert s3.put_if(f"{key}-missing", b"x", first) is None


def test_of_racing_claims_exactly_one_wins(s3: S3Storage) -> None:
    for job_id in (uuid.uuid4().hex for _ in range(5)):
        owners = [f"r{n}" for n in range(8)]
        with ThreadPoolExecutor(8) as pool:
            claims = list(pool.map(JobLease.claim, [s3] * 8, [job_id] * 8, owners, [30.0] * 8))
        assert sum(claim is not None for claim in claims) == 1
