"""API keys: which tenant a request acts for.

Keys come from ``STEMSCRIBE_API_KEYS`` (`Settings.api_keys`: ``tenant:key`` pairs).
Every job, upload and event stream belongs to the tenant that created it; any
other tenant gets 404, exactly as if it did not exist. With no keys configured the
service runs open (a warning is logged when the app is built) and every caller is
the tenant ``public``.

What needs a key (`needs_key`): every path under ``/v1``, HTTP and WebSocket,
except ``/v1/files/``, and the compatibility routes of the earlier servers that act
for a tenant (`SEED_PREFIXES`; their Socket.IO namespaces check keys on connect).
Health (``/healthz``, ``/readyz``, ``/health``), the web page (``/``,
``/static/...``) and the API docs stay open.

File URLs are authorized by their signature alone. ``/v1/files/{key}?exp=&sig=`` is
an HMAC over (method, object key, expiry): a capability for one object and one
method until it expires. The API mints one only inside a job view or an upload
reservation, that is only for a caller already authorized for that job or upload,
so the signature already binds the URL to the tenant. Asking for an API key on top
would protect nothing the URL does not, and would break what the URLs are for:
``<audio src>``, download links, ``curl -o`` and direct PUTs cannot add a header,
and the ``s3`` backend's presigned URLs never reach this service at all. Both
backends therefore share one rule: holding the URL is the permission, for
``url_ttl_seconds``.

Where the key is read: ``Authorization: Bearer <key>``; or ``?token=<key>`` where
browsers cannot set headers, which is WebSocket handshakes and ``EventSource``
streams (``Accept: text/event-stream``). Query strings end up in access logs, so
clients that can send the header should.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import HTTPConnection

from config import Settings
from deployments.api.errors import Unauthorized
from deployments.api.urls import FILES_ROUTE

OPEN_TENANT = "public"
"""The tenant of every caller when no keys are configured."""
SEED_PREFIXES = (
    "/api/",
    "/models",
    "/upload",
    "/process/",
    "/separate/",
    "/status/",
    "/download/",
    "/files/",
    "/cleanup/",
)
"""Routes of the earlier servers (``deployments/api/compat``) that act for a tenant;
their ``/health`` stays open like ``/healthz``."""
SEED_BODY_PREFIXES = ("/api/upload", "/upload", "/process/", "/separate/")
"""Those of them that take a request body, held to the upload limit like ``/v1``."""


def needs_key(path: str) -> bool:
    """``/v1`` and everything under it, except the signed file URLs; the seed routes."""
    if path == "/v1" or path.startswith("/v1/"):
        return not path.startswith(FILES_ROUTE)
    return _under(path, SEED_PREFIXES)


def has_body_limit(path: str) -> bool:
    """Requests whose bodies are held to the upload limit: ``/v1`` and the seed uploads."""
    return path.startswith("/v1/") or _under(path, SEED_BODY_PREFIXES)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p.rstrip("/") or path.startswith(p.rstrip("/") + "/") for p in prefixes)


class ApiKeys:
    """The configured keys, kept as SHA-256 digests, and the tenant of each."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._tenants = [(_digest(key), tenant) for key, tenant in keys.items()]

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        return cls(settings.tenant_keys())

    @property
    def open(self) -> bool:
        """No keys configured: every caller is `OPEN_TENANT`."""
        return not self._tenants

    def tenant_for(self, key: str) -> str | None:
        """The tenant ``key`` belongs to, or None.

        Every configured key is compared, each in constant time over equal-length
        digests, so the time taken says nothing about which key, or how much of one,
        matched.
        """
        given = _digest(key)
        found: str | None = None
        for digest, tenant in self._tenants:
            if hmac.compare_digest(digest, given):
                found = tenant
        return found

    def authenticate(self, conn: HTTPConnection) -> str:
        """The tenant of a request or WebSocket handshake; `Unauthorized` when there is none."""
        if self.open:
            return OPEN_TENANT
        key = presented_key(conn)
        if key is None:
            raise Unauthorized(
                "An API key is required: send Authorization: Bearer <key>.",
            )
        tenant = self.tenant_for(key)
        if tenant is None:
            raise Unauthorized("The API key is not valid.")
        return tenant


def presented_key(conn: HTTPConnection) -> str | None:
    """The key a client sent: the bearer token, else ``?token=`` where headers are impossible."""
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Send the API key as Authorization: Bearer <key>.")
        return value.strip()
    browser_only = conn.scope["type"] == "websocket" or "text/event-stream" in conn.headers.get(
        "accept", ""
    )
    return conn.query_params.get("token") if browser_only else None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
