"""Socket.IO for the earlier servers' clients, mounted beside the FastAPI app.

``python-socketio`` serves Engine.IO at ``/socket.io/`` (polling and WebSocket
transports) with two namespaces: ``/progress`` (``progress.py``) and
``/transcribe`` (``transcribe.py``). Everything else goes to the FastAPI app.

Rules kept from the rest of the API: with API keys configured a client must
present one (Socket.IO ``auth: {token}``, ``Authorization: Bearer``, or
``?token=``), or the connection is refused with a ``connect_error``; cross-origin
pages connect only from ``STEMSCRIBE_CORS_ORIGINS`` (same origin otherwise).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import socketio
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.api.auth import OPEN_TENANT, ApiKeys
from deployments.api.services import Services
from deployments.api.urls import route_path

SOCKETIO_PATH = "/socket.io"


class Refused(socketio.exceptions.ConnectionRefusedError):
    """A refused connection: the client's ``connect_error`` has the message, and the
    code in its ``data``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, {"code": code})


def tenant(keys: ApiKeys, environ: dict[str, Any], auth: object) -> str:
    """The tenant a connection acts for, from the first key it presents."""
    if keys.open:
        return OPEN_TENANT
    key = _presented(environ, auth)
    if key is None:
        raise Refused("unauthorized", "An API key is required: connect with auth: {token}.")
    found = keys.tenant_for(key)
    if found is None:
        raise Refused("unauthorized", "The API key is not valid.")
    return found


def _presented(environ: dict[str, Any], auth: object) -> str | None:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return str(auth["token"])
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    tokens = parse_qs(str(environ.get("QUERY_STRING", ""))).get("token")
    return tokens[0] if tokens else None


def same_origin(origin: str, environ: dict[str, Any]) -> bool:
    """A page of this very host and scheme (Engine.IO's own check assumes http, even
    when Serve terminates TLS)."""
    host = environ.get("HTTP_HOST")
    secure = environ.get("asgi.scope", {}).get("scheme") in ("https", "wss")
    return bool(host) and origin == f"{'https' if secure else 'http'}://{host}"


def socketio_server(services: Services) -> socketio.AsyncServer:
    """The server, its CORS rule the API's own: listed origins, else the same origin."""
    listed = frozenset(services.settings.cors_origins)

    def allowed(origin: str, environ: dict[str, Any]) -> bool:
        return "*" in listed or origin in listed or same_origin(origin, environ)

    frame_limit = services.args.streaming.max_frame_bytes
    return socketio.AsyncServer(
        async_mode="asgi",
        cors_allowed_origins=allowed,
        transports=list(services.args.compat.socketio_transports),
        # base64 audio is 4/3 of the bytes, plus the packet around it
        max_http_buffer_size=frame_limit * 4 // 3 + 64 * 1024,
        logger=False,
        engineio_logger=False,
    )


class WithSocketIO:
    """Send ``/socket.io/...`` to Engine.IO and everything else to the FastAPI app."""

    def __init__(self, app: FastAPI, engine: ASGIApp) -> None:
        self.app = app
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = route_path(scope)
            if path == SOCKETIO_PATH or path.startswith(SOCKETIO_PATH + "/"):
                await self.engine(scope, receive, with_close_code(send))
                return
        await self.app(scope, receive, send)


def with_close_code(send: Send) -> Send:
    """Engine.IO closes sockets without a code; the Serve proxy reads one (1000: normal)."""

    async def sending(message: Message) -> None:
        if message["type"] == "websocket.close" and "code" not in message:
            message = {**message, "code": 1000}
        await send(message)

    return sending


def mount_socketio(app: FastAPI, services: Services, keys: ApiKeys) -> WithSocketIO:
    """``app`` with both namespaces served at ``/socket.io/``."""
    from deployments.api.compat.progress import ProgressNamespace
    from deployments.api.compat.transcribe import TranscribeNamespace

    server = socketio_server(services)
    server.register_namespace(ProgressNamespace("/progress", services, keys))
    server.register_namespace(TranscribeNamespace("/transcribe", app, services, keys))
    app.state.socketio = server
    return WithSocketIO(app, socketio.ASGIApp(server, socketio_path=None))
