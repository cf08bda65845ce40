"""Bring a job's input to a local file, wherever the client put it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.errors import InvalidRequest
from pipelines.storage import Storage

INPUT_FILE = "input"
"""The input's local name inside the job folder, whatever the client called it."""


def materialise_input(storage: Storage, source: dict[str, Any], folder: Path) -> Path:
    """The job's stored input copied to ``folder/input``.

    The ingress stored and probed it before accepting the job (any input form ends
    as a stored key), so the job only copies it; the record's file name is only a
    label and never becomes a path.
    """
    key = source.get("key")
    if not isinstance(key, str):
        raise InvalidRequest("The job's input is not in storage.", details={"input": source})
    target = folder / INPUT_FILE
    if target.resolve().parent != folder.resolve():
        raise InvalidRequest("The job's input path leaves its folder.")
    storage.download_to(key, target)
    return target
