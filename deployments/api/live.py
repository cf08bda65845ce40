"""One live transcription session: WebSocket frames → `StreamingSession` → Transcriber.

`LiveStream` is what ``WS /v1/stream/transcriptions`` (``streaming.py``) runs per
socket once the handshake is accepted; the close codes are listed there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected

from config.models import StreamingArgs
from deployments.api.services import Transcribing
from pipelines.errors import StemscribeError
from pipelines.streaming import (
    SAMPLE_RATE,
    AudioChunk,
    ClientEvent,
    Close,
    DecodedSegment,
    DecodeRequest,
    Finalize,
    FrameDecoder,
    KeepAlive,
    ProtocolError,
    ServerEvent,
    SessionConfig,
    StreamingSession,
    StreamParams,
    closed,
    error,
    ready,
)

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013

_GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)
"""What sending on a socket whose client vanished raises."""


async def refuse(websocket: WebSocket, code: str, message: str, close_code: int) -> None:
    """``error`` then ``closed``, then close with ``close_code`` (an accepted socket)."""
    with contextlib.suppress(*_GONE):
        for event in (error(code, message), closed(code)):
            await websocket.send_json(event)
        await websocket.close(close_code)


class _ClientGone(Exception):
    """The client disconnected; nothing more can be sent."""


@dataclass(frozen=True)
class _End:
    """How a session ends: the ``closed`` reason, close code and optional error."""

    reason: str
    code: int = CLOSE_NORMAL
    error: tuple[str, str] | None = None
    flush: bool = False
    """Finalize everything heard before closing (the client did not ask for it)."""


class LiveStream:
    """One WebSocket session: frames → `StreamingSession` → Transcriber → messages.

    Only `run`'s coroutine touches the session and sends, so no locks. Events
    wait in ``_pending``: audio is fed at once (also while a decode runs), but a
    finalize or close waits for the in-flight decode, and frames after it wait
    for its flush, so a finalize covers exactly the audio sent before it. Forced
    decodes are rate-limited (``min_finalize_interval_seconds``): a finalize too
    soon after the last one waits, or merges into a later finalize or close.
    """

    def __init__(self, websocket: WebSocket, transcriber: Transcribing, limits: StreamingArgs):
        self.ws = websocket
        self.limits = limits
        self._transcriber = transcriber
        self._pending: deque[ClientEvent] = deque()
        self._decoding: asyncio.Task[list[DecodedSegment]] | None = None
        self._barrier: ClientEvent | None = None  # the Finalize/Close being flushed
        self._request_end = 0.0  # stream time the in-flight request reaches
        self._failures = 0
        self._forced_at = -float("inf")  # when the last forced decode started
        self._closing = False
        self._last_frame = self._started = time.monotonic()

    async def run(self, session_id: str, model: str, params: StreamParams) -> None:
        """Serve the session until it ends or the client vanishes."""
        self.model = model
        fmt, frame_limit = params.audio_format, self.limits.max_frame_bytes
        self.decoder = FrameDecoder(fmt, max_frame_bytes=frame_limit)
        config = SessionConfig(language=params.language, interim_results=params.interim_results)
        self.session = StreamingSession(config)
        try:
            await asyncio.to_thread(_load_vad)  # not on the event loop other sessions share
            await self._send(ready(session_id, model))
            await self._finish(await self._serve())
        except _ClientGone:
            log.info("live session %s: client disconnected", session_id)
        except Exception:
            log.exception("live session %s failed", session_id)
            with contextlib.suppress(_ClientGone):
                failure = ("internal_error", "The server failed; the session ends.")
                await self._finish(_End("internal_error", CLOSE_INTERNAL, failure))
        finally:
            if self._decoding is not None:
                self._decoding.cancel()

    async def _serve(self) -> _End:
        receiving: asyncio.Task[Any] | None = None
        try:
            while time.monotonic() < self._started + self.limits.max_session_seconds:
                if receiving is None and self._may_receive():
                    receiving = asyncio.create_task(self.ws.receive())
                tasks = {t for t in (receiving, self._decoding) if t is not None}
                done, _ = await asyncio.wait(
                    tasks, timeout=self._timeout(receiving), return_when=asyncio.FIRST_COMPLETED
                )
                if self._decoding in done:
                    await self._decoded()
                if receiving in done:
                    message, receiving = receiving.result(), None
                    await self._received(message)
                elif receiving is not None and self._idle():
                    idle = self.limits.idle_timeout_seconds
                    text = f"No frame for {idle:g} s; send keepalive messages during pauses."
                    return _End("idle_timeout", error=("idle_timeout", text), flush=True)
                if end := await self._advance():
                    return end
            limit = self.limits.max_session_seconds
            text = f"The session reached its limit of {limit:g} s."
            return _End("session_too_long", error=("session_too_long", text), flush=True)
        finally:
            if receiving is not None:
                receiving.cancel()

    def _may_receive(self) -> bool:
        """Back-pressure: stop reading while too much audio waits for a decode."""
        if self._decoding is None:
            return True
        held = sum(len(e.samples) for e in self._pending if isinstance(e, AudioChunk))
        backlog = self.session.stream_seconds + held / SAMPLE_RATE - self._request_end
        return backlog <= self.limits.max_backlog_seconds

    def _timeout(self, receiving: asyncio.Task[Any] | None) -> float:
        deadline = self._started + self.limits.max_session_seconds
        if receiving is not None:
            deadline = min(deadline, self._last_frame + self.limits.idle_timeout_seconds)
        if self._pending and isinstance(self._pending[0], Finalize):
            deadline = min(deadline, time.monotonic() + self._finalize_wait())
        return max(0.0, deadline - time.monotonic())

    def _finalize_wait(self) -> float:
        """Seconds until a forced decode is allowed again."""
        allowed = self._forced_at + self.limits.min_finalize_interval_seconds
        return max(0.0, allowed - time.monotonic())

    def _merge_finalize(self) -> bool:
        """Drop the finalize at the head when a later finalize or close will flush all it
        would (and more); feed the audio between them. False when none is queued."""
        later = [i for i, e in enumerate(self._pending) if i and isinstance(e, Finalize | Close)]
        if not later:
            return False
        self._pending.popleft()
        return True

    def _idle(self) -> bool:
        return time.monotonic() >= self._last_frame + self.limits.idle_timeout_seconds

    async def _received(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.disconnect":
            raise _ClientGone
        self._last_frame = time.monotonic()
        if self._closing:
            return  # after a close, nothing else counts
        frame = message.get("bytes")
        frame = frame if frame is not None else message.get("text")
        try:
            if frame is None:
                raise ProtocolError("invalid_message", "empty WebSocket message")
            events = self.decoder.decode(frame)
        except ProtocolError as exc:
            await self._send(error(exc.code, exc.message))
            return
        self._pending.extend(events)
        self._closing = any(isinstance(e, Close) for e in events)

    async def _advance(self) -> _End | None:
        """Apply what can be applied now and start the decode the session needs."""
        if self._failures >= self.limits.max_decode_failures:
            message = "The transcriber failed repeatedly; the session cannot go on."
            error_ = ("transcriber_unavailable", message)
            return _End("transcriber_unavailable", CLOSE_INTERNAL, error_)
        while self._pending and self._barrier is None:
            event = self._pending[0]
            if isinstance(event, AudioChunk | KeepAlive):
                self._pending.popleft()
                if isinstance(event, AudioChunk):
                    self.session.feed(event.samples)
                continue
            if self._decoding is not None:
                return None  # a finalize waits for the decode in flight
            if isinstance(event, Finalize) and self._finalize_wait() > 0:
                if not self._merge_finalize():
                    break  # it waits for its turn; `_timeout` wakes the loop then
                continue
            self._pending.popleft()
            request = self.session.finalize()
            if request is not None:
                self._barrier = event
                self._forced_at = time.monotonic()
                self._start(request)
            elif isinstance(event, Close):
                return _End("client_close")
        if self._barrier is None and self._decoding is None and self.session.needs_decode():
            self._start(self.session.prepare())
        return None

    def _start(self, request: DecodeRequest) -> asyncio.Task[list[DecodedSegment]]:
        self._request_end = request.end
        self._decoding = asyncio.create_task(self._decode(request))
        return self._decoding

    async def _decode(self, request: DecodeRequest) -> list[DecodedSegment]:
        timeout = self.limits.decode_timeout_seconds
        return await asyncio.wait_for(self._transcriber.decode(self.model, request), timeout)

    async def _decoded(self) -> None:
        """Apply the finished decode (or report its failure) and send the results."""
        assert self._decoding is not None
        task, self._decoding = self._decoding, None
        barrier, self._barrier = self._barrier, None
        try:
            segments = task.result()
        except Exception as exc:
            self.session.cancel()  # its audio stays in the window for the next decode
            self._failures += 1
            await self._send(error(*_decode_error(exc)))
        else:
            self._failures = 0
            apply = self.session.apply if barrier is None else self.session.apply_final
            for event in apply(segments):
                await self._send(event)
        if isinstance(barrier, Close):
            self._pending.appendleft(barrier)  # flushed: now it ends the session

    async def _finish(self, end: _End) -> None:
        if end.flush:
            await self._flush_all()
        if end.error is not None:
            await self._send(error(*end.error))
        await self._send(closed(end.reason))
        with contextlib.suppress(*_GONE):
            await self.ws.close(end.code)

    async def _flush_all(self) -> None:
        """Finals for everything heard, whatever was pending (a limit ends the session)."""
        if self._decoding is not None:
            await asyncio.wait({self._decoding})
            await self._decoded()
        for event in self._pending:
            if isinstance(event, AudioChunk):
                self.session.feed(event.samples)
        self._pending.clear()
        request = self.session.finalize()
        if request is not None:
            self._barrier = Close()
            await asyncio.wait({self._start(request)})
            await self._decoded()

    async def _send(self, event: ServerEvent) -> None:
        try:
            await self.ws.send_json(event)
        except _GONE as exc:
            raise _ClientGone from exc


def _decode_error(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, StemscribeError):
        return exc.code, exc.message
    if isinstance(exc, TimeoutError):
        return "decode_timeout", "The transcriber did not answer in time; retrying with more audio."
    log.error("live decode failed", exc_info=exc)
    return "decode_failed", "The transcriber failed on this stretch; retrying with more audio."


def _load_vad() -> None:
    from faster_whisper.vad import get_vad_model

    get_vad_model()  # cached per process: later sessions start at once
