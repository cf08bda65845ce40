"""Ray's node autoscaler on one machine: a GPU node is added for pending replicas, then removed.

The local stand-in for the KubeRay GPU worker group with ``minReplicas: 0``: Ray's fake
multi-node provider (``RAY_FAKE_CLUSTER=1``) starts and stops real raylets on this
machine as the autoscaler asks. The head has CPUs and no GPU; one node type declares two
logical GPUs, 0 to 1 of them. Deploying the app leaves DemucsWorker and Transcriber
replicas pending until the autoscaler adds that node; a separation then runs on it;
once the app is deleted the node is idle and the autoscaler removes it.

    python -m tests.cluster.autoscaling_driver --port 28410 --report report.json

Runs out of process for the reasons given in ``multinode_driver``; the JSON report
lists the nodes at each step and where the replicas ran.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.cluster_utils import Cluster

from config import Settings
from deployments.app import compose
from harness.models import save_random_htdemucs
from tests.cluster.multinode_driver import (
    APP,
    POOL,
    actor_nodes,
    app_args,
    driver_main,
    free_port,
    head_node_args,
    log,
    separate,
)
from tests.serving import TINY_HTDEMUCS, deploy, wait_ready

GPU_NODE_TYPE = "ray.worker.gpu"
IDLE_TIMEOUT_MINUTES = 0.1
DEPLOY_TIMEOUT_S = 300
REMOVAL_TIMEOUT_S = 180


def autoscaling_config(gcs_address: str) -> dict[str, Any]:
    """The cluster config of Ray's fake multi-node provider (its ``example.yaml``, which
    the wheel does not ship), with the GPU node type of ``k8s/`` at 0 to 1 nodes."""
    return {
        "cluster_name": "stemscribe-fake",
        "max_workers": 1,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": gcs_address,
        },
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {
                "resources": {"CPU": 2, POOL: 4},
                "node_config": {},
                "max_workers": 0,
            },
            GPU_NODE_TYPE: {
                "resources": {"CPU": 2, "GPU": 2, "object_store_memory": 200 * 1024 * 1024},
                "node_config": {},
                "min_workers": 0,
                "max_workers": 1,
            },
        },
        "auth": {"ssh_user": "ubuntu"},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@contextmanager
def autoscaling_cluster(workdir: Path) -> Iterator[str]:
    """The GCS address of a head node whose autoscaler uses the fake provider."""
    os.environ["RAY_FAKE_CLUSTER"] = "1"  # the autoscaler (a child process) reads these
    os.environ["AUTOSCALER_UPDATE_INTERVAL_S"] = "1"
    port = free_port()
    address = f"{ray.util.get_node_ip_address()}:{port}"
    config = workdir / "autoscaling.json"
    config.write_text(json.dumps(autoscaling_config(address)))
    head = head_node_args(gcs_server_port=port, autoscaling_config=str(config))
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        ray.init(address=cluster.address, namespace="stemscribe-autoscaling")
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()


def nodes() -> list[dict[str, Any]]:
    return [
        {"node_id": n["NodeID"], "resources": n["Resources"]} for n in ray.nodes() if n["Alive"]
    ]


def wait_until_gpu_nodes(count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len([n for n in nodes() if n["resources"].get("GPU")]) != count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {count} GPU nodes after {timeout} s: {nodes()}")
        time.sleep(1.0)
    return nodes()


def run(port: int, workdir: Path) -> dict[str, Any]:
    base_url = f"http://127.0.0.1:{port}"
    save_random_htdemucs(workdir, "tiny_htdemucs", seed=11, **TINY_HTDEMUCS)
    report: dict[str, Any] = {}
    with autoscaling_cluster(workdir) as address:
        report["before"] = nodes()
        log(f"cluster up: {len(report['before'])} node(s); deploying")
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        try:
            # Blocks while the model replicas wait for GPUs: the autoscaler must add a node.
            deploy(compose(app_args(workdir), Settings()), APP, DEPLOY_TIMEOUT_S)
            wait_ready(base_url)
            report["deployed"] = nodes()
            report["actors"] = actor_nodes(address)
            log("app ready; separating")
            report["job"] = separate(base_url)
            log(f"job {report['job']['status']}; deleting the app")
            serve.delete(APP)
            report["removed"] = wait_until_gpu_nodes(0, REMOVAL_TIMEOUT_S)
            log("GPU node removed")
        finally:
            serve.shutdown()
    return report


if __name__ == "__main__":
    driver_main(__doc__.splitlines()[0], 28410, run)
