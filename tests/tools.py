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
