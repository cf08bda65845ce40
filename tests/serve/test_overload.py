"""Real back-pressure through the served app: full queues answer at once, then recover.

The Transcriber of ``PRESSURE`` runs one call per replica and queues one more per
caller (``max_ongoing_requests`` 1, ``max_queued_requests`` 1): a burst of synchronous
transcriptions fills Serve's own queue, and every call past it gets ``503 overloaded``
with ``Retry-After``, never a hang. Live sessions at the replica's limit get
``too_many_sessions`` and close 1013; a slot freed is a slot taken again.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from ray import serve
from websockets.asyncio.client import ClientConnection, connect

from tests.serve.conftest import APP, PRESSURE
from tests.speech import speech_path

pytestmark = [pytest.mark.serve, pytest.mark.timeout(300)]

STORY = speech_path("story").read_bytes()  # 17 s of speech: seconds of work per call
BURST = 8


async def transcribe(client: httpx.AsyncClient) -> httpx.Response:
    files = {"file": ("story.wav", STORY, "audio/wav")}
    return await client.post("/v1/audio/transcriptions", files=files, data={"model": "tiny.en"})


async def burst(base_url: str, size: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=240) as client:
        return list(await asyncio.gather(*(transcribe(client) for _ in range(size))))


def test_a_full_transcriber_queue_answers_503_then_recovers(pressed: str) -> None:
    answers: list[httpx.Response] = []
    for _ in range(3):  # a burst normally overflows at once; a few tries rule out luck
        answers += asyncio.run(burst(pressed, BURST))
        if any(a.status_code == 503 for a in answers):
            break
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 503}, [a.text[:300] for a in answers]
    assert 503 in statuses and 200 in statuses, statuses
    for refused in (a for a in answers if a.status_code == 503):
        assert refused.json()["error"]["code"] == "overloaded", refused.text
        assert int(refused.headers["Retry-After"]) >= 1
    assert all(a.json()["text"].strip() for a in answers if a.status_code == 200)
    recovered = asyncio.run(burst(pressed, 1))[0]
    assert recovered.status_code == 200, recovered.text
    assert recovered.json()["text"].strip()
    transcriber = serve.status().applications[APP].deployments["Transcriber"]
    assert transcriber.status == "HEALTHY", transcriber.message


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://", 1) + "/v1/stream/transcriptions"


def open_sessions(base: str) -> int:
    return int(httpx.get(f"{base}/v1/stream/sessions", timeout=10).json()["open"])


async def hello(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(await ws.recv()))


def test_live_sessions_at_their_limit_close_1013_then_recover(pressed: str) -> None:
    limit = PRESSURE["streaming"]["max_sessions"]
    url = ws_url(pressed)

    async def scenario() -> None:
        held = [await connect(url) for _ in range(limit)]
        try:
            assert [(await hello(ws))["type"] for ws in held] == ["ready"] * limit
            async with connect(url) as extra:
                refused = await hello(extra)
                assert (refused["type"], refused["code"]) == ("error", "too_many_sessions")
                assert (await hello(extra))["type"] == "closed"
                await extra.wait_closed()
                assert extra.close_code == 1013
        finally:
            await held.pop().close()
        try:
            await _until_open(pressed, limit - 1)
            async with connect(url) as again:
                assert (await hello(again))["type"] == "ready"
        finally:
            for ws in held:
                await ws.close()

    asyncio.run(scenario())
    asyncio.run(_until_open(pressed, 0))


async def _until_open(base: str, count: int) -> None:
    """Wait (bounded) until the ingress counts ``count`` open sessions."""
    deadline = time.monotonic() + 30
    while (opened := await asyncio.to_thread(open_sessions, base)) != count:
        assert time.monotonic() < deadline, f"{opened} sessions open, expected {count}"
        await asyncio.sleep(0.1)
