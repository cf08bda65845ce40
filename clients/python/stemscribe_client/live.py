"""``stemscribe stream``: live transcription of a file or the microphone over WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from stemscribe_client.api import ClientError

__all__ = ["stream_command", "ws_url"]

STREAM_PATH = "/v1/stream/transcriptions"
MIC_BLOCK_SECONDS = 0.1


def ws_url(base_url: str) -> str:
    """``http(s)://host`` → ``ws(s)://host/v1/stream/transcriptions``."""
    scheme, rest = base_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{STREAM_PATH}"


def stream_command(
    base_url: str,
    source: Path | None,
    *,
    as_json: bool,
    token: str | None,
    options: dict[str, Any],
) -> None:
    """Stream ``source`` (None: the microphone), printing captions; `ClientError` unless
    the session ends with a normal close."""
    try:
        from stemscribe_client import stream
    except ImportError:
        raise ClientError("install stemscribe-client[stream] for stream") from None
    url = ws_url(base_url)
    printer = stream.Printer(as_json)
    if source is not None and not source.is_file():
        raise ClientError(f"no such file: {source}")
    if source is None:
        with _reaching(base_url):
            result = asyncio.run(stream_mic(url, token=token, on_message=printer, **options))
    else:
        rate = int(options.pop("sample_rate", 16_000))
        try:
            samples = stream.decode_mono(source, rate)
        except Exception as exc:  # PyAV's errors: FFmpeg could not read it as audio
            raise ClientError(f"cannot decode {source} as audio: {exc}") from None
        with _reaching(base_url):
            result = asyncio.run(
                stream.stream_audio(
                    url, samples, sample_rate=rate, token=token, on_message=printer, **options
                )
            )
    if result.close_code != 1000 or result.closed_reason != "client_close":
        raise ClientError(f"stream ended: {result.closed_reason or result.close_code}")


@contextlib.contextmanager
def _reaching(base_url: str) -> Iterator[None]:
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    try:
        yield
    except InvalidStatus as exc:
        raise ClientError(f"stream refused: {_refusal(exc)}") from None
    except InvalidHandshake as exc:
        raise ClientError(f"stream refused: {exc}") from None
    except TimeoutError:  # before OSError, its base class
        raise ClientError("the server did not close the stream in time") from None
    except OSError:
        raise ClientError(f"cannot reach server at {base_url}") from None


def _refusal(exc: Any) -> str:
    """The API's error message from a refused handshake, else its status."""
    response = exc.response
    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
        return str(json.loads(response.body)["error"]["message"])
    return f"HTTP {response.status_code}"


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError:
        raise ClientError("install sounddevice for --mic") from None
    return sounddevice


async def stream_mic(
    url: str,
    *,
    sample_rate: int = 16_000,
    token: str | None = None,
    on_message: Callable[[Any], None] | None = None,
    **query: Any,
) -> Any:
    """Stream the default input device as s16le until Ctrl-C, then ``close`` and wait for
    the server's last finals."""
    sounddevice = _sounddevice()
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    from stemscribe_client.stream import Received, StreamResult, stream_url

    full_url = stream_url(url, sample_rate=sample_rate, encoding="pcm_s16le", **query)
    headers = {"Authorization": f"Bearer {token}"} if token else None
    loop = asyncio.get_running_loop()
    blocks: asyncio.Queue[bytes] = asyncio.Queue()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    result, started = StreamResult(), time.perf_counter()

    def captured(data: Any, frames: int, when: Any, status: Any) -> None:
        loop.call_soon_threadsafe(blocks.put_nowait, bytes(data))

    async def receive(ws: Any) -> None:
        async for raw in ws:
            received = Received(time.perf_counter() - started, 0.0, json.loads(raw))
            result.received.append(received)
            if on_message is not None:
                on_message(received)

    block = round(MIC_BLOCK_SECONDS * sample_rate)
    async with connect(full_url, additional_headers=headers) as ws:
        receiving = asyncio.create_task(receive(ws))
        with sounddevice.RawInputStream(
            samplerate=sample_rate, channels=1, dtype="int16", blocksize=block, callback=captured
        ):
            while not stop.is_set() and not receiving.done():
                with contextlib.suppress(TimeoutError):
                    await ws.send(await asyncio.wait_for(blocks.get(), MIC_BLOCK_SECONDS * 2))
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "close"}))
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            await asyncio.wait_for(receiving, 120.0)
        result.close_code = ws.close_code
    return result
