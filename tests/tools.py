"""Locating command-line tools that the dev dependencies install."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def find_tool(name: str, package: str) -> str:
    """A binary installed by a dev dependency: next to Python, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: pip install -e '.[dev]' ({package}) or put it on PATH")
    return found


CHECKOV_VENV = Path(__file__).resolve().parents[1] / ".venv-checkov"
"""checkov pins versions of boto3, packaging and more that differ from the project's,
so it lives in a virtualenv of its own, made by ``make checkov``."""


def find_checkov() -> str:
    """checkov from its own virtualenv, else on PATH."""
    beside = CHECKOV_VENV / "bin" / "checkov"
    if beside.is_file():
        return str(beside)
    found = shutil.which("checkov")
    if found is None:
        pytest.fail("checkov not found: run `make checkov` (its own virtualenv, .venv-checkov)")
    return found
