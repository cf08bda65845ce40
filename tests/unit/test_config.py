"""``DeploymentArgs.serve_options``: what each config field turns into for Serve."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config import DeploymentArgs, parse_app_args
from config.app_args import MODEL_ENV

pytestmark = pytest.mark.unit


def test_custom_resources_reach_the_actor_options() -> None:
    options = DeploymentArgs(num_cpus=0.5, resources={"cpu_pool": 1}).serve_options()
    assert options["ray_actor_options"] == {
        "num_cpus": 0.5,
        "resources": {"cpu_pool": 1.0},
        "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1"}},
    }


def test_no_custom_resources_leaves_them_out() -> None:
    options = DeploymentArgs(num_cpus=1, num_gpus=0.25).serve_options()
    assert options["ray_actor_options"] == {
        "num_cpus": 1,
        "num_gpus": 0.25,
        "runtime_env": {"env_vars": {"OMP_NUM_THREADS": "1"}},
    }


def test_the_openmp_pool_is_the_replicas_compute_threads_not_its_cpu_share() -> None:
    explicit = DeploymentArgs(num_cpus=0.1, threads=2).serve_options()["ray_actor_options"]
    assert explicit["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "2"
    share = DeploymentArgs(num_cpus=4).serve_options()["ray_actor_options"]
    assert share["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "4"


def test_replicas_get_the_environment_they_are_given_besides_their_openmp_pool() -> None:
    options = DeploymentArgs(threads=3).serve_options(MODEL_ENV)["ray_actor_options"]
    assert options["runtime_env"]["env_vars"] == {**MODEL_ENV, "OMP_NUM_THREADS": "3"}


def test_resources_from_yaml_args() -> None:
    args = parse_app_args({"ingress": {"num_cpus": 0.1, "resources": {"cpu_pool": 0.5}}})
    assert args.ingress.serve_options()["ray_actor_options"]["resources"] == {"cpu_pool": 0.5}
    assert "resources" not in args.demucs_worker.serve_options()["ray_actor_options"]


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"GPU": 1}, "resources.GPU: set num_cpus / num_gpus instead"),
        ({"CPU": 2}, "resources.CPU: set num_cpus / num_gpus instead"),
        ({"cpu_pool": -1}, "resources.cpu_pool=-1.0: use a quantity >= 0"),
        ({" ": 1}, "a resource name must not be empty"),
    ],
)
def test_invalid_resources_say_what_to_change(resources: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match="Invalid stemscribe application args") as error:
        parse_app_args({"transcriber": {"resources": resources}})
    assert message in str(error.value)
    assert "transcriber" in str(error.value)


def _logical_cpus(path: Path) -> float:
    """CPUs the config's replicas reserve at their starting size."""
    args = parse_app_args(yaml.safe_load(path.read_text())["applications"][0]["args"])
    shapes = [args.ingress, args.coordinator, args.demucs_worker, args.transcriber]
    total = 0.0
    for shape in shapes:
        replicas = shape.autoscaling.min_replicas if shape.autoscaling else shape.num_replicas
        total += shape.num_cpus * max(1, replicas)
    return total


@pytest.mark.parametrize(
    ("name", "cores"), [("serve_config.offline.yaml", 2), ("serve_config.yaml", 4)]
)
def test_shipped_configs_fit_a_small_machine(name: str, cores: int) -> None:
    """`serve run` on a 2-core box (offline) or a 4-core laptop places every replica."""
    path = Path(__file__).resolve().parents[2] / name
    assert _logical_cpus(path) <= cores
