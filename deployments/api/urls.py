"""Paths and URLs: the path a route sees, and stored objects as URLs a client can use."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.types import Scope

from config import Settings
from deployments.api.services import Services
from pipelines.jobs import OutputFile

FILES_ROUTE = "/v1/files/"
"""Where the API serves the ``local`` backend's objects (``files.py``), by signed URL."""


def route_path(scope: Scope) -> str:
    """The path the router matches (the ``root_path`` a proxy mounted us under removed)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


def files_url(settings: Settings) -> str:
    """Where signed ``local`` URLs start: the public origin (when set) and `FILES_ROUTE`."""
    return (settings.public_base_url or "").rstrip("/") + FILES_ROUTE


def absolute(request: Request, services: Services, url: str) -> str:
    """Local-backend URLs are paths; make them absolute for the client."""
    if url.startswith(("http://", "https://")):
        return url
    base = services.settings.public_base_url or str(request.base_url)
    return base.rstrip("/") + url


def file_link(request: Request, services: Services, output: OutputFile) -> dict[str, Any]:
    signed = services.storage.presign_get(
        output.key, services.settings.url_ttl_seconds, filename=output.filename
    )
    return {
        "url": absolute(request, services, signed.url),
        "expires_at": signed.to_dict()["expires_at"],
        "bytes": output.bytes,
        "content_type": output.content_type,
        "filename": output.filename,
    }
