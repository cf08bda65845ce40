"""The ASGI layers around the API: CORS, security headers, keys and rate, body size.

From the outside in (`install_middleware`):

1. CORS (only when ``cors_origins`` is set), outermost so preflights need no key
   and refusals still carry the headers a browser needs to read them;
2. `SecurityHeadersMiddleware`: ``nosniff``, ``no-referrer``, ``no-store`` on JSON;
3. `AccessMiddleware`: the API key (``auth.py``) and the tenant's request rate;
4. `BodyLimitMiddleware` (``bodies.py``): request bodies over the upload limit answer 413.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from deployments.api.auth import ApiKeys, needs_key
from deployments.api.bodies import BodyLimitMiddleware, body_limit
from deployments.api.errors import RateLimited, domain_response
from deployments.api.live import CLOSE_POLICY, CLOSE_TRY_AGAIN, refuse
from deployments.api.ratelimit import RateLimiter
from deployments.api.services import Services
from deployments.api.urls import route_path
from pipelines.errors import StemscribeError

CORS_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "Range"]
CORS_EXPOSED = ["Retry-After", "Content-Range", "Accept-Ranges", "Idempotent-Replayed"]


def install_middleware(app: FastAPI, services: Services, keys: ApiKeys) -> None:
    """Add the layers in the order the module docstring lists (the last added is outermost)."""
    limits = services.args.limits
    app.add_middleware(BodyLimitMiddleware, limit=body_limit(services))
    limiter = RateLimiter(limits.requests_per_minute) if limits.requests_per_minute else None
    app.add_middleware(AccessMiddleware, keys=keys, limiter=limiter)
    app.add_middleware(SecurityHeadersMiddleware)
    origins = services.settings.cors_origins
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=["*"] if "*" in origins else origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )


class AccessMiddleware:
    """Refuse ``/v1`` requests without a valid key (401) or over the tenant's rate (429).

    The tenant is left in the request state (``current_owner`` reads it). A refused
    WebSocket gets an ``error`` message and close 1008 (1013 for the rate).
    """

    def __init__(self, app: ASGIApp, keys: ApiKeys, limiter: RateLimiter | None) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not needs_key(route_path(scope)):
            await self.app(scope, receive, send)
            return
        try:
            owner = self.keys.authenticate(HTTPConnection(scope))
            if self.limiter is not None:
                self.limiter.check(owner)
        except StemscribeError as exc:
            await _refuse(scope, receive, send, exc)
            return
        scope.setdefault("state", {})["owner"] = owner
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: StemscribeError) -> None:
    if scope["type"] == "websocket":
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        close = CLOSE_TRY_AGAIN if isinstance(exc, RateLimited) else CLOSE_POLICY
        await refuse(websocket, exc.code, exc.message, close)
        return
    response = domain_response(route_path(scope), exc)
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    await response(scope, receive, send)


class SecurityHeadersMiddleware:
    """Headers every HTTP answer carries unless a route set its own (the web page sets a CSP).

    ``no-store`` goes on JSON without a ``Cache-Control``: job views hold fresh
    signed URLs and must never be served from a cache.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                json = headers.get("content-type", "").startswith("application/json")
                if json and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)
