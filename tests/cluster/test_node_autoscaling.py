"""Ray's node autoscaler, through its fake multi-node provider: a GPU node comes and goes.

``autoscaling_driver`` runs out of process (see ``test_multinode.py``): the head has no
GPU, the app's model replicas wait for one, the autoscaler adds a node of the GPU type,
a separation runs there, and once the app is gone the idle node is removed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.test_multinode import ray_tmp, run_driver
from tests.s3server import S3Server

__all__ = ["ray_tmp"]  # the fixture, shared with test_multinode.py

pytestmark = pytest.mark.cluster

PORT = int(os.environ.get("STEMSCRIBE_TEST_CLUSTER_PORT", "28400")) + 10
TIMEOUT_S = 500


@pytest.fixture(scope="module")
def report(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory, ray_tmp: Path
) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("autoscaling")
    module = "tests.cluster.autoscaling_driver"
    return run_driver(module, PORT, TIMEOUT_S, s3_server, workdir, ray_tmp)


def gpu_nodes(nodes: list[dict[str, Any]]) -> list[str]:
    return [n["node_id"] for n in nodes if n["resources"].get("GPU")]


def test_the_cluster_starts_without_a_gpu_node(report: dict[str, Any]) -> None:
    assert len(report["before"]) == 1 and not gpu_nodes(report["before"])


def test_pending_gpu_replicas_bring_a_gpu_node(report: dict[str, Any]) -> None:
    (added,) = gpu_nodes(report["deployed"])
    assert len(report["deployed"]) == 2
    node = next(n for n in report["deployed"] if n["node_id"] == added)
    assert node["resources"]["GPU"] == 2  # the GPU node type the autoscaler may launch
    assert report["actors"]["DemucsWorker"] == [added, added]
    assert report["actors"]["Transcriber"] == [added]
    head = report["before"][0]["node_id"]
    assert report["actors"]["Ingress"] == [head] and report["actors"]["JobCoordinator"] == [head]


def test_the_job_runs_on_the_added_node(report: dict[str, Any]) -> None:
    assert report["job"]["status"] == "succeeded", report["job"].get("error")


def test_the_idle_gpu_node_is_removed(report: dict[str, Any]) -> None:
    assert not gpu_nodes(report["removed"])
    assert [n["node_id"] for n in report["removed"]] == [report["before"][0]["node_id"]]
