"""``WS /v1/stream/transcriptions``: live transcription (DESIGN.md §2).

One `LiveStream` per socket drives a `StreamingSession`. Every decode is a
stateless Transcriber call run as a task, so the socket keeps being read while
it is in flight. Close codes, each after a ``closed`` message:

- 1000: the client sent ``close`` (after its finals), or the session was idle
  for ``idle_timeout_seconds`` or reached ``max_session_seconds`` (finals for
  everything heard first, then an ``error`` naming the limit);
- 1008: the query (model, language, encoding…) or the credentials are refused;
- 1011: ``max_decode_failures`` Transcriber calls in a row failed;
- 1013: the replica already holds ``max_sessions`` sessions, or the tenant its
  ``max_sessions_per_tenant`` (try again later).

A client that vanishes gets nothing: its slot is freed and its decode cancelled.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, WebSocket

from deployments.api.auth import OPEN_TENANT
from deployments.api.live import CLOSE_POLICY, CLOSE_TRY_AGAIN, LiveStream, refuse
from deployments.api.services import Services
from deployments.api.sessions import TooManySessions, session_registry
from pipelines.errors import StemscribeError
from pipelines.streaming import parse_stream_params

router = APIRouter(tags=["streaming"])


def authorize_stream(websocket: WebSocket) -> str:
    """The tenant a live session acts for.

    ``AccessMiddleware`` (``middleware.py``) has already checked the API key, from
    the ``Authorization`` header or, for browsers (which cannot set headers on a
    WebSocket), from ``?token=``, and refused a missing or wrong one with ``error``
    and close 1008; what is left here is the tenant it found.
    """
    owner: str = getattr(websocket.state, "owner", OPEN_TENANT)
    return owner


@router.get("/v1/stream/sessions")
async def stream_sessions(request: Request) -> dict[str, int]:
    """Live sessions open on the replica that answers (each replica counts its own)."""
    registry = session_registry(request.app)
    return {"open": registry.open, "max": registry.max_sessions}


@router.websocket("/v1/stream/transcriptions")
async def stream_transcriptions(websocket: WebSocket) -> None:
    """Audio frames in; ``ready``, ``partial``, ``final``, ``error``, ``closed`` out."""
    services: Services = websocket.app.state.services
    registry = session_registry(websocket.app)
    await websocket.accept()
    try:
        owner = authorize_stream(websocket)
        params = parse_stream_params(websocket.query_params)
        model = services.transcriber.resolve(params.model)
    except StemscribeError as exc:
        await refuse(websocket, exc.code, exc.message, CLOSE_POLICY)
        return
    try:
        session_id = registry.acquire(owner)
    except TooManySessions as exc:
        await refuse(websocket, exc.code, exc.message, CLOSE_TRY_AGAIN)
        return
    try:
        await LiveStream(websocket, services.transcriber, services.args.streaming).run(
            session_id, model, params
        )
    finally:
        registry.release(session_id)
