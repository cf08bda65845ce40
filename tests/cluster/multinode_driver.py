"""Run the app on a two-node Ray cluster on this machine and report where things ran.

A pytest process can be connected to only one Ray cluster, and the serve tier
owns the in-process one, so ``tests/cluster/test_multinode.py`` runs this
script in a subprocess:

    python -m tests.cluster.multinode_driver --port 28400 --report report.json

Nodes: a head with CPUs and the ``cpu_pool`` resource (the CPU pool the
Ingress and JobCoordinator are pinned to) and a worker that declares two
logical GPUs (DemucsWorker and Transcriber ask for fractions of them). Storage
comes from the ``STEMSCRIBE_*`` environment (S3). The JSON report names the
node of every Serve replica, as Ray's state API sees it and as the model
replicas see themselves, plus the finished separation job.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve
from ray.cluster_utils import Cluster
from ray.util.state import list_actors

from config import AppArgs, Settings
from deployments.app import compose
from harness.models import save_random_htdemucs
from harness.serving import tiny_app_args
from pipelines import audio
from tests.audio_factory import sine_mix
from tests.serving import TINY_HTDEMUCS, deploy, follow_job, wait_ready

APP = "stemscribe"
POOL = "cpu_pool"
RATE = 44100
SONG_SECONDS = 10.0
DEPLOY_TIMEOUT_S = 240


def log(message: str) -> None:
    print(f"[multinode {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def app_args(model_repo: Path) -> AppArgs:
    """CPU deployments pinned to the pool; model deployments on GPU shares, as in k8s/."""
    cpu_side = {"num_cpus": 0.1, "num_gpus": 0, "resources": {POOL: 1}}
    return tiny_app_args(
        model_repo,
        ingress=cpu_side,
        coordinator=cpu_side,
        demucs_worker={"num_replicas": 2, "num_gpus": 0.5},
        transcriber={"num_replicas": 1, "num_gpus": 0.25},
        limits={"max_upload_mb": 8, "max_audio_seconds": 60},
    )


def head_node_args(**extra: Any) -> dict[str, Any]:
    """A head with the CPU pool and no GPU, its dashboard and agent on free ports."""
    return {
        "num_cpus": 2,
        "num_gpus": 0,
        "resources": {POOL: 4},
        "dashboard_agent_listen_port": None,
        # Not Ray's default 8265: another local cluster may hold that, and the
        # state API the drivers use needs this cluster's own dashboard.
        "dashboard_port": free_port(),
        **extra,
    }


@contextmanager
def two_node_cluster() -> Iterator[tuple[str, str, str]]:
    """(GCS address, head node id, GPU node id) of a cluster this process is connected to."""
    # Both nodes share this machine: one dashboard agent per node on a free port.
    cluster = Cluster(initialize_head=True, head_node_args=head_node_args())
    try:
        gpu_node = cluster.add_node(num_cpus=2, num_gpus=2)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace="stemscribe-multinode")
        yield cluster.address, cluster.head_node.node_id, gpu_node.node_id
    finally:
        ray.shutdown()
        cluster.shutdown()


def separate(base_url: str) -> dict[str, Any]:
    """Submit a generated song as a multipart upload and follow the job to its end."""
    song = audio.encode(sine_mix(SONG_SECONDS, RATE, channels=2, seed=7), RATE, format="wav")
    with httpx.Client(base_url=base_url, timeout=60) as client:
        form = {"format": "wav", "stems": "vocals,drums"}
        accepted = client.post("/v1/separations", files={"file": ("song.wav", song)}, data=form)
        if accepted.status_code != 202:
            raise RuntimeError(f"separation refused: {accepted.status_code} {accepted.text}")
        return follow_job(client, accepted.json(), timeout=240)


def replica_stats(deployment: str, replicas: int, calls: int = 40) -> list[dict[str, Any]]:
    """``stats()`` of each replica of ``deployment`` that the router reaches."""
    handle = serve.get_deployment_handle(deployment, APP)
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(calls):
        stats = handle.stats.remote().result(timeout_s=30)
        seen[stats["replica"]] = stats
        if len(seen) == replicas:
            break
    return list(seen.values())


def actor_nodes(address: str) -> dict[str, list[str]]:
    """Node ids of the live Serve actors, by deployment (``ServeController``... as is)."""
    nodes: dict[str, list[str]] = {}
    # An explicit address: other Ray clusters may run on this machine.
    alive = list_actors(address, filters=[("state", "=", "ALIVE")], limit=1000)
    for actor in alive:
        name = actor.class_name.removeprefix(f"ServeReplica:{APP}:")
        nodes.setdefault(name, []).append(actor.node_id)
    return nodes


def run(port: int, workdir: Path) -> dict[str, Any]:
    base_url = f"http://127.0.0.1:{port}"
    save_random_htdemucs(workdir, "tiny_htdemucs", seed=11, **TINY_HTDEMUCS)
    settings = Settings()  # the S3 store the test started, from STEMSCRIBE_* variables
    started = time.monotonic()
    with two_node_cluster() as (address, head_id, gpu_id):
        log(f"cluster up: head {head_id[:8]}, gpu node {gpu_id[:8]}")
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        try:
            deploy(compose(app_args(workdir), settings), APP, DEPLOY_TIMEOUT_S)
            wait_ready(base_url)
            deployed = time.monotonic()
            log("app ready; separating")
            job = separate(base_url)
            log(f"job {job['job_id']} {job['status']}")
            return {
                "head_node_id": head_id,
                "gpu_node_id": gpu_id,
                "nodes": [
                    {"node_id": n["NodeID"], "alive": n["Alive"], "resources": n["Resources"]}
                    for n in ray.nodes()
                ],
                "actors": actor_nodes(address),
                "demucs_workers": replica_stats("DemucsWorker", replicas=2),
                "transcribers": replica_stats("Transcriber", replicas=1),
                "job": job,
                "seconds": {
                    "deploy": round(deployed - started, 1),
                    "job": round(time.monotonic() - deployed, 1),
                },
            }
        finally:
            serve.shutdown()


def driver_main(
    description: str, default_port: int, run: Callable[[int, Path], dict[str, Any]]
) -> None:
    """A driver's command line: ``run(port, workdir)``'s report written as JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=default_port, help="Serve HTTP port.")
    parser.add_argument("--report", type=Path, required=True, help="Where to write the JSON.")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stemscribe-driver-") as workdir:
        report = run(options.port, Path(workdir))
    options.report.write_text(json.dumps(report, indent=2))
    log(f"report written to {options.report}")


if __name__ == "__main__":
    driver_main(__doc__.splitlines()[0], 28400, run)
