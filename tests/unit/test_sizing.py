"""Fitting the app to the cluster it is built on: GPUs, CPU shares, placement problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config import AppArgs, parse_app_args
from deployments.sizing import ClusterResources, cpu_demand, size_for

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TWO_CORES = ClusterResources.of_nodes([{"CPU": 2.0, "memory": 8e9}])
GPU_NODE = ClusterResources.of_nodes([{"CPU": 16.0, "GPU": 1.0}])


def shipped(name: str = "serve_config.yaml") -> AppArgs:
    config = yaml.safe_load((ROOT / name).read_text())
    return parse_app_args(config["applications"][0]["args"])


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.offline.yaml"])
def test_shipped_configs_fit_two_cores_as_written(name: str) -> None:
    args = shipped(name)
    assert cpu_demand(args) <= 2
    sizing = size_for(args, TWO_CORES)
    assert sizing.problems == []
    assert [getattr(sizing.args, d).num_cpus for d in ("ingress", "transcriber")] == [
        getattr(args, d).num_cpus for d in ("ingress", "transcriber")
    ]


def test_cpu_only_cluster_keeps_cpus_and_picks_the_cpu_whisper_default() -> None:
    sizing = size_for(shipped(), TWO_CORES)
    assert sizing.args.demucs_worker.num_gpus == 0 and sizing.args.transcriber.num_gpus == 0
    assert sizing.args.transcription.default_model == "base"
    assert any("'base' instead of 'large-v3'" in change for change in sizing.changes)


def test_gpu_cluster_gives_model_deployments_their_fractions() -> None:
    sizing = size_for(shipped(), GPU_NODE)
    assert sizing.args.demucs_worker.num_gpus == 0.5
    assert sizing.args.transcriber.num_gpus == 0.25
    assert sizing.args.ingress.num_gpus == 0 and sizing.args.coordinator.num_gpus == 0
    assert sizing.args.transcription.default_model == "large-v3"
    assert sizing.args.demucs_worker.serve_options()["ray_actor_options"]["num_gpus"] == 0.5
    assert sizing.problems == []


def test_explicit_gpus_are_kept_and_reported_when_there_is_none() -> None:
    args = AppArgs.model_validate({"demucs_worker": {"num_gpus": 1}})
    sizing = size_for(args, TWO_CORES)
    assert sizing.args.demucs_worker.num_gpus == 1
    [problem] = sizing.problems
    assert "demucs_worker asks for 1 GPU" in problem and "num_gpus: 0" in problem


def demanding(**extra: Any) -> AppArgs:
    """3.5 logical CPUs at start: more than a 2-core machine has."""
    raw = {
        "ingress": {"num_cpus": 0.5},
        "coordinator": {"num_cpus": 1},
        "demucs_worker": {"num_cpus": 1},
        "transcriber": {"num_cpus": 1},
    }
    return AppArgs.model_validate(raw | extra)


def test_too_many_cpus_are_shrunk_to_fit_and_said() -> None:
    sizing = size_for(demanding(), TWO_CORES)
    assert cpu_demand(sizing.args) <= 2
    assert sizing.args.ingress.num_cpus < sizing.args.coordinator.num_cpus  # proportions kept
    assert sizing.problems == []
    [change] = sizing.changes[-1:]
    assert "ask for 3.5 logical CPUs, the cluster has 2" in change and "fit_to_cluster" in change


def test_without_fitting_the_log_says_what_waits_and_how_to_fix_it() -> None:
    sizing = size_for(demanding(fit_to_cluster=False), TWO_CORES)
    assert sizing.args.coordinator.num_cpus == 1
    [problem] = sizing.problems
    assert "3.5 logical CPUs" in problem and "lower num_cpus" in problem


def test_replicas_count_at_start() -> None:
    args = demanding(
        fit_to_cluster=False,
        demucs_worker={"num_cpus": 1, "num_replicas": 3},
        transcriber={"num_cpus": 1, "autoscaling": {"min_replicas": 0, "max_replicas": 4}},
    )
    assert cpu_demand(args) == 0.5 + 1 + 3 + 1  # an autoscaled deployment still needs one


def test_unknown_custom_resource_is_a_problem() -> None:
    args = AppArgs.model_validate({"coordinator": {"num_cpus": 0.5, "resources": {"cpu_pool": 1}}})
    problems = size_for(args, TWO_CORES).problems
    assert any("'cpu_pool' that no node offers" in p for p in problems)
    pooled = ClusterResources.of_nodes([{"CPU": 4.0, "cpu_pool": 1.0}])
    assert size_for(args, pooled).problems == []


def test_cpu_default_must_be_an_enabled_model() -> None:
    with pytest.raises(ValueError, match="cpu_default_model 'huge'"):
        parse_app_args({"transcription": {"models": {"tiny": "tiny"}, "default_model": "tiny",
                                          "cpu_default_model": "huge"}})  # fmt: skip
