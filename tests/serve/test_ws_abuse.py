"""Hostile live-transcription clients through the real Serve proxy.

Malformed frames each get an ``error`` message and the session goes on; a frame the
proxy will not carry, or a refused query, gets a close code. Meanwhile a
well-behaved session on the same replica gets its finals, and no replica restarts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import ray
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from evaluation.wer import word_error_rate
from stemscribe_client.stream import StreamResult, stream_file
from tests.serve.conftest import APP

pytestmark = [pytest.mark.serve, pytest.mark.timeout(300)]

SPEECH = Path(__file__).parents[1] / "fixtures" / "speech"
TRANSCRIPTS = json.loads((SPEECH / "transcripts.json").read_text())
FRAME_LIMIT = 1 << 20  # StreamingArgs.max_frame_bytes default
PROXY_LIMIT = 16 << 20  # what the Serve proxy (uvicorn) carries per message


def audio_message(data: bytes) -> str:
    return json.dumps({"type": "audio", "audio": base64.b64encode(data).decode()})


def seed_audio(data: str, mime: str) -> str:
    return json.dumps({"event": "audio", "payload": {"data": data, "mimeType": mime}})


S16_FRAMES: dict[str, tuple[bytes | str, str]] = {
    "odd byte count": (b"\x01\x02\x03", "invalid_audio"),
    "frame over the limit": (bytes(FRAME_LIMIT + 2), "frame_too_large"),
    "text frame over the limit": ("x" * (FRAME_LIMIT * 2), "frame_too_large"),
    "json array": ("[]", "invalid_message"),
    "json string": ('"x"', "invalid_message"),
    "json number": ("1", "invalid_message"),
    "json null": ("null", "invalid_message"),
    "not json": ("{", "invalid_json"),
    "unknown type": ('{"type": "dance"}', "unknown_message_type"),
    "no type": ("{}", "unknown_message_type"),
    "audio not base64": ('{"type": "audio", "audio": "@@@"}', "invalid_base64"),
    "audio not a string": ('{"type": "audio", "audio": 5}', "invalid_message"),
    "odd byte count in base64": (audio_message(b"abc"), "invalid_audio"),
    "seed framing, not pcm": (seed_audio("AAAA", "audio/ogg"), "unsupported_format"),
    "seed framing, absurd rate": (seed_audio("AAAA", "audio/pcm;rate=1"), "unsupported_format"),
    "seed framing, no payload": ('{"event": "audio"}', "invalid_message"),
}
"""Frames a ``pcm_s16le`` session refuses: description -> (frame, error code)."""

F32_FRAMES: dict[str, tuple[bytes | str, str]] = {
    "NaN samples": (np.full(64, np.nan, "<f4").tobytes(), "invalid_audio"),
    "infinite samples": (np.full(64, np.inf, "<f4").tobytes(), "invalid_audio"),
    "byte count not a multiple of 4": (bytes(6), "invalid_audio"),
}
"""Frames an ``f32le`` session refuses."""


@dataclass
class Session:
    """What one client saw: messages, error codes per bad frame, and how it ended."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    codes: dict[str, str] = field(default_factory=dict)
    close_code: int | None = None

    @property
    def types(self) -> list[str]:
        return [m["type"] for m in self.messages]


def ws_url(base: str, **query: str) -> str:
    url = base.replace("http://", "ws://", 1) + "/v1/stream/transcriptions"
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


async def next_message(ws: ClientConnection, session: Session) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), 30))
    session.messages.append(message)
    return dict(message)


async def close_cleanly(ws: ClientConnection, session: Session) -> None:
    """Ask for the close; read everything until the server closes the socket."""
    await ws.send(json.dumps({"type": "close"}))
    try:
        while True:
            await next_message(ws, session)
    except ConnectionClosed:
        session.close_code = ws.close_code


async def bad_frames(url: str, frames: dict[str, tuple[bytes | str, str]]) -> Session:
    """One session sending every frame of ``frames``, each answered with an error."""
    session = Session()
    async with connect(url, max_size=None) as ws:
        assert (await next_message(ws, session))["type"] == "ready"
        for name, (frame, _) in frames.items():
            await ws.send(frame)
            while (message := await next_message(ws, session))["type"] != "error":
                pass
            session.codes[name] = message["code"]
        await close_cleanly(ws, session)
    return session


async def flood(url: str, frames: int = 5000) -> Session:
    """Thousands of one-sample frames as fast as the socket takes them."""
    session = Session()
    async with connect(url) as ws:
        assert (await next_message(ws, session))["type"] == "ready"
        for _ in range(frames):
            await ws.send(b"\x00\x00")
        await close_cleanly(ws, session)
    return session


async def beyond_the_proxy(url: str) -> Session:
    """A frame over the 16 MiB the proxy carries: the connection is closed, not crashed."""
    session = Session()
    async with connect(url, max_size=None, close_timeout=10) as ws:
        assert (await next_message(ws, session))["type"] == "ready"
        try:
            await ws.send(bytes(PROXY_LIMIT + 1024))
            while True:
                await next_message(ws, session)
        except ConnectionClosed:
            session.close_code = ws.close_code
    return session


async def refused_query(url: str) -> Session:
    session = Session()
    async with connect(url) as ws:
        try:
            while True:
                await next_message(ws, session)
        except ConnectionClosed:
            session.close_code = ws.close_code
    return session


@dataclass
class Outcome:
    good: StreamResult
    s16: Session
    f32: Session
    flood: Session
    oversized: Session
    bad_encoding: Session
    bad_rate: Session


async def abuse_while_one_client_behaves(base: str) -> Outcome:
    good = asyncio.create_task(
        stream_file(ws_url(base), SPEECH / "weather.wav", speed=2.0, chunk_seconds=0.25)
    )
    results = await asyncio.gather(
        bad_frames(ws_url(base), S16_FRAMES),
        bad_frames(ws_url(base, encoding="f32le"), F32_FRAMES),
        flood(ws_url(base)),
        beyond_the_proxy(ws_url(base)),
        refused_query(ws_url(base, encoding="mp3")),
        refused_query(ws_url(base, sample_rate="0")),
    )
    return Outcome(await good, *results)


@pytest.fixture(scope="module")
def replicas_before(served: str) -> set[str]:
    return serve_replicas()


@pytest.fixture(scope="module")
def outcome(served: str, replicas_before: set[str]) -> Outcome:
    return asyncio.run(abuse_while_one_client_behaves(served))


def serve_replicas() -> set[str]:
    actors = ray.util.list_named_actors(all_namespaces=True)
    return {a["name"] for a in actors if a["name"].startswith("SERVE_REPLICA::" + APP + "#")}


def test_each_bad_frame_gets_its_error_and_the_session_goes_on(outcome: Outcome) -> None:
    assert outcome.s16.codes == {name: code for name, (_, code) in S16_FRAMES.items()}
    assert outcome.f32.codes == {name: code for name, (_, code) in F32_FRAMES.items()}
    for session in (outcome.s16, outcome.f32):
        assert session.types[-1] == "closed" and session.messages[-1]["reason"] == "client_close"
        assert session.close_code == 1000
        errors = [m for m in session.messages if m["type"] == "error"]
        assert all(isinstance(m["message"], str) and m["message"] for m in errors)


def test_a_flood_of_tiny_frames_is_just_audio(outcome: Outcome) -> None:
    assert "error" not in outcome.flood.types, outcome.flood.messages
    assert outcome.flood.types[-1] == "closed" and outcome.flood.close_code == 1000


def test_a_frame_the_proxy_cannot_carry_closes_that_session(outcome: Outcome) -> None:
    assert outcome.oversized.close_code == 1009  # message too big


def test_a_refused_query_gets_an_error_then_1008(outcome: Outcome) -> None:
    for session, field_ in ((outcome.bad_encoding, "encoding"), (outcome.bad_rate, "sample_rate")):
        assert session.types == ["error", "closed"], session.messages
        assert session.messages[0]["code"] == "invalid_request"
        assert field_ in session.messages[0]["message"]
        assert session.close_code == 1008


def test_the_well_behaved_session_gets_its_finals(outcome: Outcome) -> None:
    good = outcome.good
    assert good.errors == [] and good.close_code == 1000, good.received
    assert good.closed_reason == "client_close"
    assert word_error_rate(TRANSCRIPTS["weather"], good.text) <= 0.25, good.text


def test_no_session_or_replica_is_left_behind(
    outcome: Outcome, served: str, replicas_before: set[str]
) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sessions = httpx.get(f"{served}/v1/stream/sessions", timeout=10).json()
        if sessions["open"] == 0:
            break
        time.sleep(0.2)
    assert sessions["open"] == 0
    assert serve_replicas() == replicas_before
