"""Limits and failures of ``WS /v1/stream/transcriptions``: an app of its own per test."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from config.models import StreamingArgs
from deployments.api import Services, create_api
from deployments.api.services import Transcribing
from evaluation.wer import word_error_rate
from pipelines.streaming import DecodedSegment, DecodeRequest
from tests.api.test_streaming_ws import (
    CLOSE,
    NUMBERS,
    STORY,
    TRANSCRIPTS,
    URL,
    chunks,
    converse,
    final_text,
    of_type,
    open_sessions,
    read_to_close,
    wait_for_no_sessions,
)
from tests.fakes import InProcessTranscriber

pytestmark = [pytest.mark.api, pytest.mark.timeout(120)]


@contextlib.contextmanager
def own_app(
    services: Services, transcriber: Transcribing | None = None, **limits: Any
) -> Iterator[TestClient]:
    args = services.args.model_copy(update={"streaming": StreamingArgs(**limits)})
    changed = dataclasses.replace(
        services, args=args, transcriber=transcriber or services.transcriber
    )
    with TestClient(create_api(changed)) as test_client:
        yield test_client


class FlakyTranscriber:
    """Fails the first ``failures`` decodes, then decodes for real."""

    def __init__(self, inner: InProcessTranscriber, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def decode(self, model: str, request: DecodeRequest) -> list[DecodedSegment]:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("replica died")
        return await self.inner.decode(model, request)


def test_over_the_session_limit_gets_error_then_1013(services: Services) -> None:
    with own_app(services, max_sessions=1) as client:
        assert client.get("/v1/stream/sessions").json() == {"open": 0, "max": 1}
        with client.websocket_connect(URL) as first:
            assert first.receive_json()["type"] == "ready"
            with client.websocket_connect(URL) as second:
                messages, code = read_to_close(second)
            assert [m["type"] for m in messages] == ["error", "closed"]
            assert messages[0]["code"] == "too_many_sessions" and code == 1013
            assert open_sessions(client) == 1
            messages, code = converse(first, [CLOSE])
            assert messages == [{"type": "closed", "reason": "client_close"}] and code == 1000
        wait_for_no_sessions(client)


def test_idle_session_is_finalized_and_closed(services: Services) -> None:
    with own_app(services, idle_timeout_seconds=1.0) as client:
        with client.websocket_connect(URL) as ws:
            assert ws.receive_json()["type"] == "ready"
            for chunk in chunks(NUMBERS, 8_000):
                ws.send_bytes(chunk)
            ws.send_json({"type": "keepalive"})
            began = time.monotonic()
            messages, code = read_to_close(ws)
        wait_for_no_sessions(client)
    assert code == 1000 and time.monotonic() - began >= 0.9
    assert [(m["type"], m.get("code")) for m in messages[-2:]] == [
        ("error", "idle_timeout"),
        ("closed", None),
    ]
    assert messages[-1]["reason"] == "idle_timeout"
    # Everything heard was final before the close.
    assert word_error_rate(TRANSCRIPTS["numbers"], final_text(messages)) == 0.0


def test_session_length_limit(services: Services) -> None:
    with own_app(services, max_session_seconds=1.0) as client, client.websocket_connect(URL) as ws:
        assert ws.receive_json()["type"] == "ready"
        for _ in range(20):
            ws.send_json({"type": "keepalive"})  # keepalives do not extend a session
            time.sleep(0.1)
        messages, code = read_to_close(ws)
    assert code == 1000
    assert (
        messages[-2]["code"] == "session_too_long" and messages[-1]["reason"] == "session_too_long"
    )


def test_a_failed_decode_is_reported_and_retried(
    services: Services, transcriber: InProcessTranscriber
) -> None:
    flaky = FlakyTranscriber(transcriber, failures=1)
    with own_app(services, flaky) as client, client.websocket_connect(URL) as ws:
        messages, code = converse(ws, [*chunks(NUMBERS, 8_000), CLOSE])
    assert code == 1000 and [m["code"] for m in of_type(messages, "error")] == ["decode_failed"]
    assert word_error_rate(TRANSCRIPTS["numbers"], final_text(messages)) == 0.0


def test_a_dead_transcriber_ends_the_session_with_1011(
    services: Services, transcriber: InProcessTranscriber
) -> None:
    flaky = FlakyTranscriber(transcriber, failures=100)
    with own_app(services, flaky, max_decode_failures=2) as client:
        with client.websocket_connect(URL) as ws:
            assert ws.receive_json()["type"] == "ready"
            for chunk in chunks(STORY, 8_000):
                ws.send_bytes(chunk)
            messages, code = read_to_close(ws)
        wait_for_no_sessions(client)
    codes = [m["code"] for m in of_type(messages, "error")]
    assert codes == ["decode_failed", "decode_failed", "transcriber_unavailable"]
    assert messages[-1]["reason"] == "transcriber_unavailable" and code == 1011


class ForcedDecodes:
    """Records when each forced (flush) decode starts, then decodes for real."""

    def __init__(self, inner: InProcessTranscriber) -> None:
        self.inner = inner
        self.flushes: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def decode(self, model: str, request: DecodeRequest) -> list[DecodedSegment]:
        if request.flush:
            self.flushes.append(time.monotonic())
        return await self.inner.decode(model, request)


def test_finalize_spam_is_merged_and_still_flushes_everything(
    services: Services, transcriber: InProcessTranscriber
) -> None:
    forced = ForcedDecodes(transcriber)
    spam: list[bytes | str | dict[str, Any]] = []
    for chunk in chunks(NUMBERS, 8_000):
        spam += [chunk, {"type": "finalize"}]
    limits = {"min_finalize_interval_seconds": 60.0}
    with own_app(services, forced, **limits) as client, client.websocket_connect(URL) as ws:
        messages, code = converse(ws, [*spam, CLOSE])
    assert code == 1000 and not of_type(messages, "error")
    finalizes = sum(1 for frame in spam if isinstance(frame, dict))
    # the first finalize, then the close: every finalize between merged into the close
    assert finalizes > 10 and len(forced.flushes) <= 2
    # The first finalize cuts the first word (0.25 s in), as the client asked: one word off.
    assert word_error_rate(TRANSCRIPTS["numbers"], final_text(messages)) <= 0.1


def test_a_finalize_too_soon_waits_for_its_turn(
    services: Services, transcriber: InProcessTranscriber
) -> None:
    forced = ForcedDecodes(transcriber)
    half = len(NUMBERS) // 4 * 2
    first = [*chunks(NUMBERS[:half], 8_000), {"type": "finalize"}]
    second = [*chunks(NUMBERS[half:], 8_000), {"type": "finalize"}]
    limits = {"min_finalize_interval_seconds": 1.5}
    with own_app(services, forced, **limits) as client, client.websocket_connect(URL) as ws:
        for frame in [*first, *second]:
            ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_json(frame)
        messages = [ws.receive_json()]
        while len(forced.flushes) < 2 or messages[-1]["type"] != "final":
            messages.append(ws.receive_json())
        more, code = converse(ws, [CLOSE])
    assert code == 1000 and not of_type(messages + more, "error")
    assert forced.flushes[1] - forced.flushes[0] >= 1.5  # the limit, not a speed
    # The first finalize cuts a word in two, as the client asked: one word off.
    assert word_error_rate(TRANSCRIPTS["numbers"], final_text(messages + more)) <= 0.1
