"""Turning stored objects into URLs a client can use."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from deployments.api.services import Services
from pipelines.jobs import OutputFile


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
