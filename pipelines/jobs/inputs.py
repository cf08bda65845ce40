"""Bring a job's input to a local file, wherever the client put it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from config import LimitsArgs
from pipelines.fetch import fetch_url
from pipelines.storage import Storage


def materialise_input(
    storage: Storage,
    source: dict[str, Any],
    folder: Path,
    limits: LimitsArgs,
    *,
    allow_private_urls: bool = False,
) -> Path:
    """The input as a file in ``folder``: copied from storage or downloaded from its URL."""
    target = folder / (source.get("filename") or "input")
    if "key" in source:
        storage.download_to(source["key"], target)
    else:
        fetch_url(
            source["url"],
            target,
            max_bytes=int(limits.max_upload_mb * 1024 * 1024),
            timeout=limits.max_url_download_seconds,
            allow_private=allow_private_urls,
        )
    return target
