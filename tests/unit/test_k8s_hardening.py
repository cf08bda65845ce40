"""The rendered manifests, checked by tools others wrote and by the rules of a safe deploy.

``kubernetes-validate --strict`` checks the standard kinds against Kubernetes' own
schemas; ``checkov`` (its own virtualenv, see ``tests/tools.py``) checks security
and reliability. Neither knows the RayService, so its pod templates are rendered
out as Deployments (``tests.k8s_render``) and checked like any other pod.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import parse_app_args
from config.quantity import parse_bytes
from tests.k8s_render import (
    CORE_API_GROUPS,
    K8S,
    KUSTOMIZATIONS,
    ROOT,
    Doc,
    kustomize,
    only,
    pod_specs,
    pod_templates_as_deployments,
    ray_pod_labels,
    rayservice_of,
    serve_config,
)
from tests.tools import find_checkov, find_tool

pytestmark = pytest.mark.unit

STANDARD_GROUPS = {"v1", "apps", "networking.k8s.io", "policy", "scheduling.k8s.io"}
INGRESS_NAMESPACE = "ingress-nginx"
OPERATOR_NAMESPACE = "kuberay-system"
SERVE_PORT = 8000
# Allocatable room of the node shapes the manifests are written for (rayservice.yaml
# header), after the kubelet's reservations and a few daemonsets: about 0.5 CPU and
# 10% + 1 GiB of memory less than the machine.
NODES = {
    "cpu": {"cpu": 16 - 0.5, "memory": int(64 * 2**30 * 0.9) - 2**30, "gpu": 0},
    "gpu": {"cpu": 8 - 0.5, "memory": int(32 * 2**30 * 0.9) - 2**30, "gpu": 1},
}


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return kustomize(K8S / request.param)


def api_group(doc: Doc) -> str:
    version: str = doc["apiVersion"]
    return version.split("/")[0] if "/" in version else "v1"


def standard_objects(docs: list[Doc]) -> list[Doc]:
    """The standard kinds as rendered, plus the Ray pod templates as Deployments."""
    plain = [doc for doc in docs if api_group(doc) in STANDARD_GROUPS]
    return plain + pod_templates_as_deployments(docs)


# --- tools ------------------------------------------------------------------------------


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    tool = find_tool("kubernetes-validate", "kubernetes-validate")
    return subprocess.run(
        [tool, "--strict", "--quiet", str(path)], capture_output=True, text=True, timeout=120
    )


def test_standard_kinds_validate_strictly(rendered: list[Doc], tmp_path: Path) -> None:
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(standard_objects(rendered)))
    done = kubernetes_validate(path)
    assert done.returncode == 0, f"kubernetes-validate --strict:\n{done.stdout}{done.stderr}"


def test_strict_validation_rejects_a_typo_in_a_ray_pod(tmp_path: Path) -> None:
    broken = pod_templates_as_deployments(kustomize(K8S / "base"))[0]
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsRoot"] = False
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    assert kubernetes_validate(path).returncode != 0


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over every kustomization (it takes a while to start)."""
    folder = tmp_path_factory.mktemp("checkov")
    for name in KUSTOMIZATIONS:
        objects = standard_objects(kustomize(K8S / name))
        (folder / f"{name.replace('/', '_')}.yaml").write_text(yaml.safe_dump_all(objects))
    command = [find_checkov(), "-d", str(folder), "--framework", "kubernetes"]
    command += ["--output", "json", "--skip-download"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.stdout.strip(), f"checkov printed nothing:\n{done.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_checkov_finds_no_failure(checkov_report: dict[str, Any]) -> None:
    failed = checkov_report["results"]["failed_checks"]
    lines = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed]
    assert not failed, "checkov failures:\n" + "\n".join(lines)


def test_checkov_skips_are_justified_inline(checkov_report: dict[str, Any]) -> None:
    for check in checkov_report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} on {check['resource']}: say why"


def test_checkov_looked_inside_every_ray_pod(checkov_report: dict[str, Any]) -> None:
    passed = checkov_report["results"]["passed_checks"]
    for group in ("head", "cpu", "gpu"):
        resource = f"Deployment.stemscribe.stemscribe-ray-{group}"
        checks = {c["check_id"] for c in passed if c["resource"] == resource}
        # privilege escalation, capabilities, seccomp, read-only root, secrets as files
        assert {"CKV_K8S_20", "CKV_K8S_28", "CKV_K8S_31", "CKV_K8S_22", "CKV_K8S_35"} <= checks


def test_base_needs_no_custom_resource_beyond_kuberay() -> None:
    groups = {api_group(doc) for doc in kustomize(K8S / "base")}
    assert groups <= CORE_API_GROUPS, f"base needs extra CRDs: {groups - CORE_API_GROUPS}"


# --- containers ---------------------------------------------------------------------------


def all_pod_specs(docs: list[Doc]) -> list[tuple[str, Doc]]:
    pods = [(group, pod) for group, _, pod in pod_specs(rayservice_of(docs))]
    pods += [
        (d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in only(docs, "Deployment")
    ]
    return pods


def test_every_container_is_locked_down(rendered: list[Doc]) -> None:
    contexts = []
    for name, pod in all_pod_specs(rendered):
        pod_context = pod.get("securityContext", {})
        assert pod_context.get("runAsNonRoot") is True, name
        for container in pod["containers"] + pod.get("initContainers", []):
            contexts.append((f"{name}/{container['name']}", pod_context, container))
    cluster = rayservice_of(rendered)["spec"]["rayClusterConfig"]
    autoscaler = {"name": "autoscaler", **cluster["autoscalerOptions"]}
    contexts.append(("autoscaler", {}, autoscaler))
    for name, pod_context, container in contexts:
        context = container.get("securityContext", {})
        assert context.get("allowPrivilegeEscalation") is False, name
        assert context.get("capabilities", {}).get("drop") == ["ALL"], name
        assert context.get("readOnlyRootFilesystem") is True, name
        assert not context.get("privileged"), name
        seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile") or {}
        assert seccomp.get("type") == "RuntimeDefault", name


def test_shared_memory_holds_the_object_store(rendered: list[Doc]) -> None:
    for group, spec, pod in pod_specs(rayservice_of(rendered)):
        store = int(spec["rayStartParams"]["object-store-memory"])
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = [c for c in pod["containers"] if c["name"].startswith("ray-")]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        shm = volumes[mounts["/dev/shm"]]["emptyDir"]
        assert shm.get("medium") == "Memory", group
        assert parse_bytes(shm["sizeLimit"]) >= store, f"{group}: /dev/shm below the store"
        # tmpfs pages count against the pod's memory limit: leave the heap its room.
        limit = parse_bytes(container["resources"]["limits"]["memory"])
        assert parse_bytes(shm["sizeLimit"]) <= limit // 3, f"{group}: shm eats the heap"


def test_pods_fit_the_node_shapes_they_select(rendered: list[Doc]) -> None:
    cluster = rayservice_of(rendered)["spec"]["rayClusterConfig"]
    used = {pool: {"cpu": 0.0, "memory": 0, "gpu": 0} for pool in NODES}
    # The head, its autoscaler and two cpu workers share one cpu node; one gpu
    # worker takes a gpu node.
    per_node = {"head": 1, "cpu": 2, "gpu": 1}
    for group, _, pod in pod_specs(rayservice_of(rendered)):
        pool = pod["nodeSelector"]["stemscribe.io/pool"]
        (container,) = [c for c in pod["containers"] if c["name"].startswith("ray-")]
        requests = container["resources"]["requests"]
        assert requests == container["resources"]["limits"], f"{group}: Guaranteed QoS"
        used[pool]["cpu"] += float(requests["cpu"]) * per_node[group]
        used[pool]["memory"] += parse_bytes(requests["memory"]) * per_node[group]
        used[pool]["gpu"] += int(requests.get("nvidia.com/gpu", 0)) * per_node[group]
        if pool == "gpu":
            tolerated = {t["key"] for t in pod.get("tolerations", [])}
            assert "nvidia.com/gpu" in tolerated, group
    sidecar = cluster["autoscalerOptions"]["resources"]["limits"]
    used["cpu"]["cpu"] += float(sidecar["cpu"])
    used["cpu"]["memory"] += parse_bytes(sidecar["memory"])
    for pool, need in used.items():
        for resource, amount in need.items():
            assert amount <= NODES[pool][resource], f"{pool} node: {resource} {amount}"


# --- the head ---------------------------------------------------------------------------


def test_the_head_is_not_evicted_or_preempted(rendered: list[Doc]) -> None:
    rayservice = rayservice_of(rendered)
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    labels = ray_pod_labels(rayservice, "head", head)
    budgets = [
        b
        for b in only(rendered, "PodDisruptionBudget")
        if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ]
    assert [b["spec"].get("maxUnavailable") for b in budgets] == [0]
    notes = head["metadata"]["annotations"]
    assert notes["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert notes["karpenter.sh/do-not-disrupt"] == "true"
    classes = {c["metadata"]["name"]: c for c in only(rendered, "PriorityClass")}
    priority = classes[head["spec"]["priorityClassName"]]
    assert priority["value"] > 0 and not priority.get("globalDefault")


def test_ray_calls_need_the_token(rendered: list[Doc]) -> None:
    cluster = rayservice_of(rendered)["spec"]["rayClusterConfig"]
    assert cluster["authOptions"]["mode"] == "token"


def test_production_keeps_the_gcs_in_redis() -> None:
    cluster = rayservice_of(kustomize(K8S / "overlays" / "production"))["spec"]
    options = cluster["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert re.fullmatch(r"[\w.-]+:\d+", options["redisAddress"])
    assert "secretKeyRef" in options["redisPassword"]["valueFrom"]


def test_upgrades_let_the_old_cluster_finish_its_jobs(rendered: list[Doc]) -> None:
    spec = rayservice_of(rendered)["spec"]
    longest = max(
        parse_app_args(app["args"]).limits.max_audio_seconds
        for app in serve_config(rayservice_of(rendered))["applications"]
    )
    # A job runs at most about as long as its audio (realtime factor below 1),
    # after waiting its turn: twice the longest audio covers both.
    assert spec["rayClusterDeletionDelaySeconds"] >= 2 * longest


# --- network ----------------------------------------------------------------------------


def allowed(policies: list[Doc], labels: dict[str, str]) -> list[tuple[str, Any]]:
    """(source, port) pairs the policies selecting a pod with ``labels`` allow in."""
    opened = []
    for policy in policies:
        if not policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items():
            continue
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])] or ["any"]
            sources = rule.get("from") or [{"anywhere": True}]
            opened += [(json.dumps(src, sort_keys=True), port) for src in sources for port in ports]
    return opened


def test_only_serve_is_open_to_the_ingress_and_ray_only_inside(rendered: list[Doc]) -> None:
    policies = only(rendered, "NetworkPolicy")
    assert any(p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") for p in policies), (
        "a default-deny policy for the namespace"
    )
    rayservice = rayservice_of(rendered)
    release = {"app.kubernetes.io/part-of": "stemscribe", "ray.io/is-ray-node": "yes"}
    for group, spec, _ in pod_specs(rayservice):
        labels = ray_pod_labels(rayservice, group, spec["template"])
        for source, port in allowed(policies, labels):
            src = json.loads(source)
            assert "anywhere" not in src and "ipBlock" not in src, f"{group}: open to all"
            pods = src.get("podSelector", {}).get("matchLabels")
            namespace = src.get("namespaceSelector", {}).get("matchLabels", {})
            namespace_name = namespace.get("kubernetes.io/metadata.name")
            if pods is not None:
                assert pods.items() >= release.items(), f"{group}: {pods} is not the release"
            elif namespace_name == INGRESS_NAMESPACE:
                assert port == SERVE_PORT, f"{group}: ingress may reach only Serve"
            elif namespace_name == OPERATOR_NAMESPACE:
                assert group == "head" and port == 8265, f"{group}: operator reaches the dashboard"
            else:
                assert namespace_name == "monitoring" and port in {8080, 44217, 44227}, src
        opened = allowed(policies, labels)
        ingress_ports = {p for s, p in opened if INGRESS_NAMESPACE in s}
        assert ingress_ports == {SERVE_PORT}, f"{group}: the ingress controller reaches Serve"


def test_every_ingress_serves_tls(rendered: list[Doc]) -> None:
    for ingress in only(rendered, "Ingress"):
        hosts = {rule["host"] for rule in ingress["spec"]["rules"]}
        covered = {h for tls in ingress["spec"].get("tls", []) for h in tls["hosts"]}
        assert hosts <= covered, f"{ingress['metadata']['name']}: no TLS for {hosts - covered}"
        assert all(tls.get("secretName") for tls in ingress["spec"]["tls"])


def test_the_policy_check_sees_an_opening() -> None:
    docs = kustomize(K8S / "base")
    policies = copy.deepcopy(only(docs, "NetworkPolicy"))
    policies.append({"spec": {"podSelector": {}, "ingress": [{}]}})
    rayservice = rayservice_of(docs)
    head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
    sources = [s for s, _ in allowed(policies, ray_pod_labels(rayservice, "head", head))]
    assert any("anywhere" in s for s in sources)


# --- alerts -------------------------------------------------------------------------------


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors of a Markdown file."""
    titles = re.findall(r"^#+\s+(.+)$", markdown, re.M)
    slug = lambda t: re.sub(r"[^\w\- ]", "", t.strip().lower()).replace(" ", "-")  # noqa: E731
    return {slug(t) for t in titles}


def test_alerts_have_a_severity_and_a_runbook() -> None:
    (rule,) = only(kustomize(K8S / "overlays" / "production"), "PrometheusRule")
    known = anchors((ROOT / "docs" / "OPERATIONS.md").read_text())
    metrics = (ROOT / "deployments" / "metrics.py").read_text()
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert len(alerts) >= 8
    for alert in alerts:
        assert alert["labels"]["severity"] in {"warning", "critical"}, alert["alert"]
        anchor = alert["annotations"]["runbook_url"].split("OPERATIONS.md#", 1)[1]
        assert anchor in known, f"{alert['alert']}: no '{anchor}' in docs/OPERATIONS.md"
        for name in re.findall(r"ray_(stemscribe_\w+?)(?:_total|_bucket)?\b", alert["expr"]):
            assert f'"{name}"' in metrics, f"{alert['alert']}: no metric {name}"
