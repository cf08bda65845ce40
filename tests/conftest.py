"""Session-wide fixtures: one S3 server and one Ray cluster for the whole run.

Tiers run in the order of ``TIER_ORDER`` (unit → api → s3 → e2e → cluster → serve →
faults → browser): the e2e and cluster tiers run their own Ray clusters out of process
and are done before this process starts its shared one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.s3server import s3_server_fixture
from tests.serving import Stage

s3_server = s3_server_fixture(scope="session")
"""SeaweedFS S3 on 127.0.0.1:23333 (``STEMSCRIBE_TEST_S3_PORT``), started on first use."""

SERVE_PORT = int(os.environ.get("STEMSCRIBE_TEST_SERVE_PORT", "28000"))
TIER_ORDER = ["unit", "api", "s3", "e2e", "cluster", "serve", "faults", "browser", "slow", "gpu"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def tier(item: pytest.Item) -> int:
        marks = {m.name for m in item.iter_markers()}
        return max((i for i, name in enumerate(TIER_ORDER) if name in marks), default=0)

    items.sort(key=tier)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster with two logical GPUs and Serve on ``SERVE_PORT``."""
    import ray
    from ray import serve

    ray.init(num_cpus=8, num_gpus=2, include_dashboard=False, namespace="stemscribe-tests")
    serve.start(http_options={"host": "127.0.0.1", "port": SERVE_PORT})
    yield f"http://127.0.0.1:{SERVE_PORT}"
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def stage(ray_cluster: str) -> Stage:
    """The cluster's application slot, shared by the serve, faults and browser tiers."""
    return Stage(ray_cluster)
