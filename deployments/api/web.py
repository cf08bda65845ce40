"""``GET /`` and ``GET /static/{name}``: the web page, plain files with strict headers.

The page is static HTML, CSS and JavaScript modules from ``deployments/web`` (no
build step, nothing from other hosts). Its Content-Security-Policy allows scripts
and styles from this origin only. Two kinds of requests must leave it:

- the live-caption WebSocket, to this host over ``ws:``/``wss:`` (listed
  explicitly: older browsers do not match sockets with ``'self'``);
- the storage service, when it is not this API: the browser PUTs uploads to a
  presigned URL (``connect-src``), fetches the transcript JSON (``connect-src``)
  and plays stems (``media-src``) straight from S3. Its origin comes from the
  settings, so the policy names exactly the store the URLs are presigned for.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response

from config import Settings
from deployments.api.services import AppServices
from pipelines.errors import NotFound

router = APIRouter(tags=["web"], include_in_schema=False)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
"""The page's files, installed with the package (``package-data`` in pyproject.toml)."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
AWS_STORAGE = "https://*.amazonaws.com"
_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:js|css|svg|png)")
_HOST = re.compile(r"[A-Za-z0-9.-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")
_ORIGIN_PART = re.compile(r"[A-Za-z0-9.:\[\]-]+")


@router.get("/")
async def index(request: Request, services: AppServices) -> Response:
    """The web page."""
    return await _serve("index.html", request, services.settings)


@router.get("/static/{name}")
async def static(name: str, request: Request, services: AppServices) -> Response:
    """A script, stylesheet or image of the page."""
    if not _STATIC_NAME.fullmatch(name) or name == "index.html":
        raise NotFound(f"No static file {name!r}.")
    return await _serve(name, request, services.settings)


async def _serve(name: str, request: Request, settings: Settings) -> Response:
    body, etag = await asyncio.to_thread(_load, name)
    headers = security_headers(settings, request.headers.get("host"))
    headers |= {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=CONTENT_TYPES[Path(name).suffix], headers=headers)


@lru_cache(maxsize=32)
def _load(name: str) -> tuple[bytes, str]:
    """The file's bytes and an ETag; the files only change with a new deployment."""
    path = WEB_DIR / name
    if not path.is_file():
        raise NotFound(f"No static file {name!r}.")
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def security_headers(settings: Settings, host: str | None) -> dict[str, str]:
    """Headers every file of the page is served with."""
    return {
        "Content-Security-Policy": content_security_policy(settings, host),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
    }


def content_security_policy(settings: Settings, host: str | None) -> str:
    """Same-origin everything, plus this host's WebSockets and the storage origin."""
    storage = storage_sources(settings)
    sockets = [f"ws://{host}", f"wss://{host}"] if host and _HOST.fullmatch(host) else []
    directives = {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "media-src": ["'self'", "blob:", *storage],
        "connect-src": ["'self'", *sockets, *storage],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def storage_sources(settings: Settings) -> list[str]:
    """Origins the browser reaches storage at, when that is not this API itself."""
    if settings.storage_backend == "local":
        base = _origin(settings.public_base_url) if settings.public_base_url else None
        return [base] if base else []
    endpoint = settings.s3_public_endpoint_url or settings.s3_endpoint_url
    if endpoint is None:
        return [AWS_STORAGE]
    origin = _origin(endpoint)
    if origin is None:
        return []
    if settings.s3_path_style:
        return [origin]
    scheme, _, netloc = origin.partition("://")
    return [origin, f"{scheme}://*.{netloc}"]  # virtual hosts: bucket.endpoint-host


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL; None for anything else."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not _ORIGIN_PART.fullmatch(netloc):
        return None
    return f"{parts.scheme}://{netloc}"
