"""Socket.IO ``/transcribe``: the live session of ``/v1/stream/transcriptions`` behind
the multi-model backend's events.

Client → server: ``audio`` ``{payload: {data: <base64 PCM16>, mimeType:
"audio/pcm;rate=16000"}}`` and ``finish``. Server → client: ``transcription``
``{transcription: text, start, end, final: true}`` for each committed stretch (text
never repeats), ``partial`` ``{transcription, start, end}`` for the unconfirmed tail,
``error`` ``{code, message}``, and after ``finish`` (once everything heard is
transcribed) ``finished`` ``{transcription: whole text, reason}``. The next ``audio``
after that starts a new session on the same connection.

The session is the very `LiveStream` of the native WebSocket (same policy, limits and
Transcriber calls); `SocketIOChannel` stands in for its WebSocket.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl

import socketio
from fastapi import FastAPI, WebSocket

from deployments.api.auth import ApiKeys
from deployments.api.compat.sockets import tenant
from deployments.api.live import LiveStream
from deployments.api.services import Services
from deployments.api.sessions import session_registry
from pipelines.errors import StemscribeError
from pipelines.streaming import ServerEvent, StreamParams, parse_stream_params

Message = dict[str, Any]


class SocketIOChannel:
    """What `LiveStream` needs of a WebSocket, over one Socket.IO connection."""

    def __init__(self, server: socketio.AsyncNamespace, sid: str) -> None:
        self.server = server
        self.sid = sid
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.finals: list[str] = []

    def push(self, frame: dict[str, Any]) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(frame)})

    def gone(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1001})

    async def receive(self) -> Message:
        return await self.inbox.get()

    async def send_json(self, event: ServerEvent) -> None:
        kind = event["type"]
        if kind == "final":
            self.finals.append(event["text"])
            body = {"transcription": event["text"], "start": event["start"], "end": event["end"]}
            await self._emit("transcription", body | {"final": True})
        elif kind == "partial":
            body = {"transcription": event["text"], "start": event["start"], "end": event["end"]}
            await self._emit("partial", body)
        elif kind == "error":
            await self._emit("error", {"code": event["code"], "message": event["message"]})
        elif kind == "closed":
            text = " ".join(self.finals)
            await self._emit("finished", {"transcription": text, "reason": event["reason"]})

    async def close(self, code: int = 1000) -> None:
        """The session is over; the Socket.IO connection stays open for the next one."""

    async def _emit(self, event: str, data: dict[str, Any]) -> None:
        await self.server.emit(event, data, to=self.sid)


@dataclass
class Connection:
    owner: str
    params: StreamParams | None
    problem: StemscribeError | None = None
    """Why the query string cannot open a session (told at the first ``audio``)."""
    channel: SocketIOChannel | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class TranscribeNamespace(socketio.AsyncNamespace):
    """One live session at a time per connection, counted against the replica's limit."""

    def __init__(self, namespace: str, app: FastAPI, services: Services, keys: ApiKeys) -> None:
        super().__init__(namespace)
        self.app = app
        self.services = services
        self.keys = keys
        self.connections: dict[str, Connection] = {}

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        owner = tenant(self.keys, environ, auth)
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", ""))))
        try:
            self.connections[sid] = Connection(owner, parse_stream_params(query))
        except StemscribeError as exc:
            self.connections[sid] = Connection(owner, None, exc)

    async def on_disconnect(self, sid: str, reason: object = None) -> None:
        connection = self.connections.pop(sid, None)
        if connection is not None and connection.channel is not None:
            connection.channel.gone()

    async def on_audio(self, sid: str, data: object = None) -> None:
        connection = self.connections.get(sid)
        if connection is None:
            return
        if connection.channel is None and not await self._start(sid, connection):
            return
        assert connection.channel is not None
        payload = data.get("payload") if isinstance(data, dict) else None
        connection.channel.push({"event": "audio", "payload": payload})

    async def on_finish(self, sid: str, data: object = None) -> None:
        connection = self.connections.get(sid)
        if connection is not None and connection.channel is not None:
            connection.channel.push({"event": "finish"})

    async def _start(self, sid: str, connection: Connection) -> bool:
        """A new session for the connection; False (after an ``error``) when refused."""
        try:
            if connection.problem is not None:
                raise connection.problem
            params = connection.params
            assert params is not None
            model = self.services.transcriber.resolve(params.model)
        except StemscribeError as exc:
            await self.emit("error", {"code": exc.code, "message": exc.message}, to=sid)
            return False
        registry = session_registry(self.app)
        session_id = registry.acquire(connection.owner)
        if session_id is None:
            text = f"This server already holds {registry.max_sessions} live sessions; retry later."
            await self.emit("error", {"code": "too_many_sessions", "message": text}, to=sid)
            return False
        channel = SocketIOChannel(self, sid)
        limits = self.services.args.streaming
        live = LiveStream(cast(WebSocket, channel), self.services.transcriber, limits)
        connection.channel = channel

        async def run() -> None:
            try:
                await live.run(session_id, model, params)
            finally:
                registry.release(session_id)
                if connection.channel is channel:
                    connection.channel = None

        connection.task = asyncio.create_task(run())
        return True
