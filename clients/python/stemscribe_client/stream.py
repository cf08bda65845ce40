"""Stream an audio file to ``WS /v1/stream/transcriptions`` and print the live transcript.

    python -m stemscribe_client.stream ws://localhost:8000/v1/stream/transcriptions talk.wav

The file is decoded (any format FFmpeg reads) to mono at ``--sample-rate`` and sent
as binary s16le frames at real-time pace (``--speed 4``: four times faster,
``--speed 0``: as fast as possible). Partials overwrite one line, finals get a line
each; ``--json`` prints every server message as a JSON line instead. At the end
of the audio the client sends ``close`` and waits for ``closed``.

`stream_file` and `stream_audio` are the same thing as a library call: they
return every message with its arrival time and the audio sent by then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["Received", "StreamResult", "main", "stream_audio", "stream_file"]

Message = dict[str, Any]


@dataclass(frozen=True)
class Received:
    """One server message and when it arrived."""

    at: float
    """Wall seconds since the first audio frame was sent."""
    audio_sent: float
    """Seconds of audio sent when it arrived."""
    message: Message


@dataclass
class StreamResult:
    """Everything one streamed file produced, with timings."""

    received: list[Received] = field(default_factory=list)
    sent: list[tuple[float, float]] = field(default_factory=list)
    """(wall seconds since the start, seconds of audio sent) after each frame."""
    close_code: int | None = None

    def of_type(self, kind: str) -> list[Message]:
        """Messages of one ``type`` in arrival order."""
        return [r.message for r in self.received if r.message["type"] == kind]

    @property
    def finals(self) -> list[Message]:
        return self.of_type("final")

    @property
    def partials(self) -> list[Message]:
        return self.of_type("partial")

    @property
    def errors(self) -> list[Message]:
        return self.of_type("error")

    @property
    def closed_reason(self) -> str | None:
        """Reason of the ``closed`` message, None when none came."""
        closed = self.of_type("closed")
        return str(closed[-1]["reason"]) if closed else None

    @property
    def text(self) -> str:
        """All final text joined with spaces."""
        return " ".join(m["text"] for m in self.finals)

    def sent_at(self, audio_seconds: float) -> float:
        """Wall seconds since the start when audio up to ``audio_seconds`` had been sent."""
        for at, audio in self.sent:
            if audio >= audio_seconds - 1e-6:
                return at
        return self.sent[-1][0] if self.sent else 0.0


def to_s16le(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] → 16-bit little-endian PCM."""
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()


def stream_url(url: str, **params: str | int | bool | None) -> str:
    """``url`` with the query parameters that are set."""
    query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
    query = {k: v for k, v in query.items() if v is not None}
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + urlencode(query)


async def stream_file(
    url: str, path: str | Path, *, sample_rate: int = 16_000, **options: Any
) -> StreamResult:
    """Decode ``path`` to mono at ``sample_rate`` and stream it (see `stream_audio`)."""
    samples = await asyncio.to_thread(decode_mono, path, sample_rate)
    return await stream_audio(url, samples, sample_rate=sample_rate, **options)


def decode_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """The first audio stream of ``path`` as mono float32 at ``sample_rate`` (FFmpeg's
    resampler; channels averaged). Raises ``ValueError`` when it holds no audio."""
    import av

    blocks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise ValueError(f"{path} has no audio stream")
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        for frame in container.decode(container.streams.audio[0]):
            blocks += [out.to_ndarray() for out in resampler.resample(frame)]
        blocks += [out.to_ndarray() for out in resampler.resample(None)]
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(blocks, axis=1).mean(axis=0, dtype=np.float32)


async def stream_audio(
    url: str,
    samples: np.ndarray,
    *,
    sample_rate: int = 16_000,
    speed: float = 1.0,
    chunk_seconds: float = 0.2,
    model: str | None = None,
    language: str | None = None,
    interim_results: bool = True,
    token: str | None = None,
    on_message: Callable[[Received], None] | None = None,
    close_timeout: float = 120.0,
) -> StreamResult:
    """Send mono float ``samples`` as s16le frames of ``chunk_seconds``, ``speed`` times real
    time (0: unpaced), then ``close``; collect messages until the server closes."""
    full_url = stream_url(
        url,
        model=model,
        language=language,
        sample_rate=sample_rate,
        encoding="pcm_s16le",
        interim_results=interim_results,
    )
    headers = {"Authorization": f"Bearer {token}"} if token else None
    result = StreamResult()
    async with connect(full_url, additional_headers=headers, max_size=1 << 24) as ws:
        clock = _Clock()
        receiving = asyncio.create_task(_receive(ws, result, clock, on_message))
        with contextlib.suppress(ConnectionClosed):  # the server may end the session first
            await _send(ws, samples, sample_rate, speed, chunk_seconds, result, clock)
            await ws.send(json.dumps({"type": "close"}))
        await asyncio.wait_for(receiving, close_timeout)
        result.close_code = ws.close_code
    return result


async def _send(
    ws: ClientConnection,
    samples: np.ndarray,
    sample_rate: int,
    speed: float,
    chunk_seconds: float,
    result: StreamResult,
    clock: _Clock,
) -> None:
    step = max(1, round(chunk_seconds * sample_rate))
    for start in range(0, len(samples), step):
        await clock.wait_until(start / sample_rate / speed if speed > 0 else 0.0)
        await ws.send(to_s16le(samples[start : start + step]))
        clock.audio = min(len(samples), start + step) / sample_rate
        result.sent.append((clock.now(), clock.audio))


class _Clock:
    """Wall time since the first frame, and how much audio was sent by then."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.audio = 0.0

    def now(self) -> float:
        return time.perf_counter() - self.start

    async def wait_until(self, at: float) -> None:
        delay = at - self.now()
        if delay > 0:
            await asyncio.sleep(delay)


async def _receive(
    ws: ClientConnection,
    result: StreamResult,
    clock: _Clock,
    on_message: Callable[[Received], None] | None,
) -> None:
    with contextlib.suppress(ConnectionClosed):  # the close code tells how it ended
        async for raw in ws:
            received = Received(clock.now(), clock.audio, json.loads(raw))
            result.received.append(received)
            if on_message is not None:
                on_message(received)


class Printer:
    """Partials overwrite one line (on a terminal); finals get a line each."""

    def __init__(self, as_json: bool = False) -> None:
        self.as_json = as_json
        self.tty = sys.stdout.isatty()

    def __call__(self, received: Received) -> None:
        message = received.message
        if self.as_json:
            print(json.dumps(message | {"received_at": round(received.at, 3)}), flush=True)
        elif message["type"] == "partial" and self.tty:
            print(f"\r\033[K{_span(message)} … {message['text']}", end="", flush=True)
        elif message["type"] == "final":
            print(f"{self._clear()}{_span(message)} {message['text']}", flush=True)
        elif message["type"] == "error":
            print(f"{self._clear()}error {message['code']}: {message['message']}", file=sys.stderr)

    def _clear(self) -> str:
        return "\r\033[K" if self.tty else ""


def _span(message: Message) -> str:
    return f"[{message['start']:7.2f} → {message['end']:7.2f}]"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exit status 0 when the server closed normally."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url", help="ws://host:port/v1/stream/transcriptions")
    parser.add_argument("file", type=Path, help="audio file (any format FFmpeg reads)")
    parser.add_argument("--speed", type=float, default=1.0, help="times real time; 0: unpaced")
    parser.add_argument("--chunk-ms", type=int, default=200, help="audio per frame")
    parser.add_argument("--sample-rate", type=int, default=16_000, help="rate to send at")
    parser.add_argument("--model", help="transcription model (server default if unset)")
    parser.add_argument("--language", help="ISO 639 code; unset: detect")
    parser.add_argument("--no-interim", action="store_true", help="finals only")
    parser.add_argument("--token", help="API key, sent as Authorization: Bearer")
    parser.add_argument("--json", action="store_true", help="print every message as JSON")
    opts = parser.parse_args(argv)
    result = asyncio.run(
        stream_file(
            opts.url,
            opts.file,
            sample_rate=opts.sample_rate,
            speed=opts.speed,
            chunk_seconds=opts.chunk_ms / 1000,
            model=opts.model,
            language=opts.language,
            interim_results=not opts.no_interim,
            token=opts.token,
            on_message=Printer(opts.json),
        )
    )
    return 0 if result.close_code == 1000 and result.closed_reason == "client_close" else 1


if __name__ == "__main__":
    sys.exit(main())
