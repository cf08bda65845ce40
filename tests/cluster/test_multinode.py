"""The app on a real two-node Ray cluster: replicas land where their resources are.

``multinode_driver`` runs out of process (this process keeps its one Ray
connection for the serve tier) with its own ``RAY_TMPDIR``, so the cluster
never becomes the "current cluster" another ``ray.init()`` on this machine
would join.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipelines import audio
from tests.s3server import S3Server

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("STEMSCRIBE_TEST_CLUSTER_PORT", "28400"))
TIMEOUT_S = 400
BUCKET = "cluster-tier"


def driver_env(s3: S3Server, ray_tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_TMPDIR=str(ray_tmp),
        STEMSCRIBE_STORAGE_BACKEND="s3",
        STEMSCRIBE_BUCKET=BUCKET,
        STEMSCRIBE_S3_ENDPOINT_URL=s3.endpoint,
        STEMSCRIBE_S3_ACCESS_KEY_ID=s3.access_key,
        STEMSCRIBE_S3_SECRET_ACCESS_KEY=s3.secret_key,
        # The store holds only the fixture's own bucket; the app makes this one.
        STEMSCRIBE_S3_CREATE_BUCKET="true",
    )
    return env


def tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no output)"


def run_driver(
    module: str, port: int, timeout: float, s3: S3Server, workdir: Path, ray_tmp: Path
) -> dict[str, Any]:
    """Run a driver module (``tests.cluster.<name>``) to completion and return its JSON
    report; any failure carries the end of its output."""
    report, output = workdir / "report.json", workdir / "driver.log"
    command = [sys.executable, "-m", module, "--port", str(port), "--report", str(report)]
    with output.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=driver_env(s3, ray_tmp),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # nodes the driver starts join its group
        )
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            stop_group(process)
    if code != 0 or not report.exists():
        status = f"timed out after {timeout:.0f} s" if code is None else f"exited with {code}"
        pytest.fail(f"{module} {status}; output tail:\n{tail(output)}", pytrace=False)
    found: dict[str, Any] = json.loads(report.read_text())
    return found


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Kill whatever the driver left behind (Ray daemons share its session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)


@pytest.fixture(scope="module")
def ray_tmp() -> Iterator[Path]:
    # Short on purpose: Ray puts unix sockets under it (108-byte path limit).
    path = Path(tempfile.mkdtemp(prefix="ssc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def report(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory, ray_tmp: Path
) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("multinode")
    return run_driver(
        "tests.cluster.multinode_driver", PORT, TIMEOUT_S, s3_server, workdir, ray_tmp
    )


def test_two_nodes_only_one_with_a_gpu(report: dict[str, Any]) -> None:
    nodes = {n["node_id"]: n for n in report["nodes"] if n["alive"]}
    assert set(nodes) == {report["head_node_id"], report["gpu_node_id"]}
    assert nodes[report["gpu_node_id"]]["resources"].get("GPU") == 2
    assert "GPU" not in nodes[report["head_node_id"]]["resources"]
    assert "cpu_pool" not in nodes[report["gpu_node_id"]]["resources"]


def test_model_replicas_run_on_the_gpu_node(report: dict[str, Any]) -> None:
    gpu_node = report["gpu_node_id"]
    workers, transcribers = report["demucs_workers"], report["transcribers"]
    assert len(workers) == 2 and len(transcribers) == 1
    for stats in workers + transcribers:
        assert stats["node_id"] == gpu_node, stats
        assert len(stats["gpu_ids"]) == 1, stats  # a share of one of the node's logical GPUs
    assert report["actors"]["DemucsWorker"] == [gpu_node, gpu_node]
    assert report["actors"]["Transcriber"] == [gpu_node]


def test_cpu_replicas_stay_in_the_cpu_pool(report: dict[str, Any]) -> None:
    head = report["head_node_id"]
    assert report["actors"]["Ingress"] == [head]
    assert report["actors"]["JobCoordinator"] == [head]


def test_separation_crosses_nodes_and_lands_in_s3(
    report: dict[str, Any], s3_server: S3Server
) -> None:
    job = report["job"]
    assert job["status"] == "succeeded", job.get("error")
    # Every window went through a DemucsWorker, and every DemucsWorker is on the GPU node.
    assert sum(stats["windows"] for stats in report["demucs_workers"]) > 0
    assert set(job["result"]["outputs"]) == {"vocals", "drums"}
    url = job["result"]["outputs"]["vocals"]["url"]
    assert url.startswith(f"{s3_server.endpoint}/{BUCKET}/jobs/{job['job_id']}/")
    stem = httpx.get(url, timeout=30)
    assert stem.status_code == 200, stem.text
    info = audio.probe(stem.content)
    assert (info.sample_rate, info.channels) == (44100, 2)
    assert abs(info.duration - 10.0) < 1e-3
