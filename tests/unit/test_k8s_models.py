"""The image bakes exactly the models the cluster enables, and then goes offline."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from config import parse_app_args
from tests.k8s_render import K8S, ROOT, kustomize, rayservice_of, serve_config

pytestmark = pytest.mark.unit

DOCKERFILE = ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def bake_models() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bake_models_k8s", ROOT / "scripts" / "bake_models.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def default_bake_models() -> str:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    (value,) = re.findall(r'^ARG BAKE_MODELS="([^"]*)"', text, re.M)
    return value


def enabled_models(path: Path) -> set[tuple[str, str]]:
    enabled: set[tuple[str, str]] = set()
    for app in serve_config(rayservice_of(kustomize(path)))["applications"]:
        args = parse_app_args(app["args"])
        enabled |= {("demucs", name) for name in args.separation.models}
        enabled |= {("whisper", spec) for spec in args.transcription.models.values()}
    return enabled


@pytest.mark.parametrize("kustomization", ["base", "overlays/production"])
def test_the_image_bakes_exactly_the_enabled_models(
    bake_models: ModuleType, kustomization: str
) -> None:
    baked = {(s.family, s.name) for s in bake_models.parse_specs([default_bake_models()])}
    enabled = enabled_models(K8S / kustomization)
    assert baked == enabled, (
        f"not baked: {sorted(enabled - baked)}; baked but not enabled: {sorted(baked - enabled)}"
    )


def test_the_hub_is_off_once_the_models_are_baked() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    bake = next(i for i, line in enumerate(lines) if "scripts.bake_models" in line)
    offline = [i for i, line in enumerate(lines) if re.match(r"ENV\s+HF_HUB_OFFLINE=1\b", line)]
    assert offline and offline[0] > bake, "set ENV HF_HUB_OFFLINE=1 after baking"


def test_deploy_guide_builds_with_the_default_model_list() -> None:
    guide = (ROOT / "docs" / "DEPLOY.md").read_text()
    assert "docker build" in guide
    assert "BAKE_MODELS=" not in guide, "the guide must not bake a different model list"
