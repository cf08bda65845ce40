"""Sizing against a live Ray cluster that declares logical GPUs (``ray.init(num_gpus=2)``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config import parse_app_args
from deployments.sizing import ClusterResources, size_for

pytestmark = pytest.mark.serve

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_config_takes_gpus_the_cluster_reports(ray_cluster: str) -> None:
    cluster = ClusterResources.current()
    assert (cluster.cpus, cluster.gpus) == (8, 2)  # the session cluster's declaration
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())["applications"][0]["args"]
    sizing = size_for(parse_app_args(raw), cluster)
    assert sizing.problems == []
    worker = sizing.args.demucs_worker.serve_options()["ray_actor_options"]
    transcriber = sizing.args.transcriber.serve_options()["ray_actor_options"]
    assert (worker["num_gpus"], transcriber["num_gpus"]) == (0.5, 0.25)
    assert "num_gpus" not in sizing.args.ingress.serve_options()["ray_actor_options"]
    assert sizing.args.transcription.default_model == "large-v3"  # a GPU: no CPU default
