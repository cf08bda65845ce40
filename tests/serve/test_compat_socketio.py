"""The Socket.IO namespaces through the real Serve proxy, with the Python Socket.IO client.

``/progress`` follows a separation made with the old ``/api/upload`` to 100;
``/transcribe`` carries a live session whose text must match the native WebSocket's bound.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import numpy as np
import pytest
import socketio

from evaluation.wer import word_error_rate
from pipelines import audio
from tests.audio_factory import sine_mix
from tests.speech import TRANSCRIPTS, speech_path

pytestmark = [pytest.mark.serve, pytest.mark.timeout(400)]

CHUNK_SECONDS = 0.25
SPEED = 2.0
WER_BOUND = 0.08
"""The bound of the native WebSocket test on story.wav (test_streaming_serve.py)."""


def pcm16_chunks(name: str) -> list[str]:
    """A speech fixture as 16 kHz PCM16, base64, in 250 ms chunks (what the old page sent)."""
    samples = audio.decode(speech_path(name), sample_rate=16000, channels=1)[0]
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(16000 * CHUNK_SECONDS) * 2
    return [base64.b64encode(pcm[i : i + step]).decode() for i in range(0, len(pcm), step)]


async def live_transcription(base: str, chunks: list[str], transports: list[str]) -> dict[str, Any]:
    client = socketio.AsyncClient()
    got: dict[str, Any] = {"transcription": [], "errors": []}
    finished = asyncio.Event()

    @client.on("transcription", namespace="/transcribe")
    async def on_text(data: dict[str, Any]) -> None:
        got["transcription"].append(data["transcription"])

    @client.on("error", namespace="/transcribe")
    async def on_error(data: dict[str, Any]) -> None:
        got["errors"].append(data)

    @client.on("finished", namespace="/transcribe")
    async def on_finished(data: dict[str, Any]) -> None:
        got["finished"] = data
        finished.set()

    await client.connect(base, namespaces=["/transcribe"], transports=transports, wait_timeout=60)
    got["transport"] = client.transport()
    mime = "audio/pcm;rate=16000"
    for chunk in chunks:
        await client.emit("audio", {"payload": {"data": chunk, "mimeType": mime}}, "/transcribe")
        await asyncio.sleep(CHUNK_SECONDS / SPEED)
    await client.emit("finish", {}, namespace="/transcribe")
    await asyncio.wait_for(finished.wait(), timeout=180)
    await client.disconnect()
    return got


async def follow_progress(base: str, job_id: str, transports: list[str]) -> list[dict[str, Any]]:
    client = socketio.AsyncClient()
    events: list[dict[str, Any]] = []
    done = asyncio.Event()

    @client.on("progress", namespace="/progress")
    async def on_progress(data: dict[str, Any]) -> None:
        events.append(data)
        if data["progress"] == 100:
            done.set()

    @client.on("error", namespace="/progress")
    async def on_error(data: dict[str, Any]) -> None:
        events.append({"error": data})
        done.set()

    await client.connect(base, namespaces=["/progress"], transports=transports, wait_timeout=60)
    await client.emit("subscribe", {"job_id": job_id}, namespace="/progress")
    await asyncio.wait_for(done.wait(), timeout=300)
    await client.disconnect()
    return events


@pytest.fixture(scope="module")
def separation_job(served: str) -> str:
    song = audio.encode(sine_mix(6.0, 44100, channels=2, seed=8), 44100, format="mp3")
    files = {"audio_file": ("song.mp3", song, "audio/mpeg")}
    form = {"model": "tiny_htdemucs", "stems": "all", "format": "mp3"}
    response = httpx.post(f"{served}/api/upload", files=files, data=form, timeout=60)
    assert response.status_code == 200, response.text
    return str(response.json()["job_id"])


def test_progress_over_websocket_reaches_100(served: str, separation_job: str) -> None:
    events = asyncio.run(follow_progress(served, separation_job, ["websocket"]))
    assert all("error" not in e for e in events), events
    values = [e["progress"] for e in events]
    assert values == sorted(values) and values[-1] == 100
    assert events[-1]["status"] == "completed"
    zipped = httpx.get(f"{served}/api/download/{separation_job}", timeout=60)
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"


def test_progress_over_polling_with_one_ingress_replica(served: str, separation_job: str) -> None:
    events = asyncio.run(follow_progress(served, separation_job, ["polling"]))
    assert events[-1]["progress"] == 100 and events[-1]["status"] == "completed"


def test_unknown_job_gets_an_error_event(served: str) -> None:
    events = asyncio.run(follow_progress(served, "0123456789abcdef", ["websocket"]))
    assert events == [
        {
            "error": {
                "job_id": "0123456789abcdef",
                "code": "not_found",
                "message": "No job with id '0123456789abcdef'.",
            }
        }
    ]


def test_live_transcription_over_websocket(served: str) -> None:
    got = asyncio.run(live_transcription(served, pcm16_chunks("story"), ["websocket"]))
    assert got["transport"] == "websocket"
    assert got["errors"] == []
    text = " ".join(got["transcription"])
    assert got["finished"]["transcription"] == text
    assert len(got["transcription"]) >= 2  # incremental, not one flush at the end
    assert word_error_rate(TRANSCRIPTS["story"], text) <= WER_BOUND
