"""Serve replica autoscaling exercised: workers are added under load and removed when idle.

The app of ``PRESSURE`` autoscales DemucsWorker and Transcriber between 1 and 2
replicas (target: one ongoing request each, delays of seconds). Separation jobs and
synchronous transcriptions are kept running until Serve has started a second replica
of each, then stopped; once idle, each deployment is back to one replica. Checked by
the replica states Serve reports, never by how long any of it took.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from ray import serve

from pipelines import audio
from tests.audio_factory import sine_mix
from tests.serve.conftest import APP, AUTOSCALING
from tests.speech import speech_path

pytestmark = [pytest.mark.serve, pytest.mark.timeout(400)]

SCALED = ("DemucsWorker", "Transcriber")
SONG = audio.encode(sine_mix(20.0, 44100, seed=8), 44100, format="wav")
SPEECH = speech_path("weather").read_bytes()


def running() -> dict[str, int]:
    deployments = serve.status().applications[APP].deployments
    return {name: deployments[name].replica_states.get("RUNNING", 0) for name in SCALED}


def wait_for(counts: dict[str, int], what: str, timeout: float = 180.0) -> list[dict[str, int]]:
    """Poll Serve until every deployment runs ``counts`` replicas; the states seen."""
    seen = [running()]
    deadline = time.monotonic() + timeout
    while any(seen[-1][name] != n for name, n in counts.items()):
        assert time.monotonic() < deadline, f"{what}: still {seen[-1]}"
        time.sleep(1.0)
        seen.append(running())
    return seen


class Load:
    """Separation jobs and transcriptions kept in flight from a thread until stopped."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.stop = threading.Event()
        self.answers: dict[int, int] = {}
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=300)

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=240) as client:
            await asyncio.gather(
                *(self._separations(client) for _ in range(2)),
                *(self._transcriptions(client) for _ in range(3)),
            )

    async def _separations(self, client: httpx.AsyncClient) -> None:
        while not self.stop.is_set():
            files = {"file": ("song.wav", SONG)}
            form = {"stems": "drums", "shifts": "0"}
            accepted = await client.post("/v1/separations", files=files, data=form)
            self._count(accepted.status_code)
            if accepted.status_code != 202:
                await asyncio.sleep(0.5)
                continue
            job_url = f"/v1/jobs/{accepted.json()['job_id']}"
            while (await client.get(job_url)).json()["status"] in ("queued", "running"):
                await asyncio.sleep(0.5)

    async def _transcriptions(self, client: httpx.AsyncClient) -> None:
        while not self.stop.is_set():
            files = {"file": ("weather.wav", SPEECH, "audio/wav")}
            answer = await client.post(
                "/v1/audio/transcriptions", files=files, data={"model": "tiny.en"}
            )
            self._count(answer.status_code)
            if answer.status_code == 503:  # the short queue is full: what scales it out
                await asyncio.sleep(0.2)

    def _count(self, status: int) -> None:
        self.answers[status] = self.answers.get(status, 0) + 1


@pytest.fixture(scope="module")
def idle(pressed: str) -> Iterator[str]:
    """The app at its minimum: one replica of each autoscaled deployment."""
    wait_for(dict.fromkeys(SCALED, AUTOSCALING["min_replicas"]), "idle before the load")
    yield pressed


def test_replicas_are_added_under_load_and_removed_when_idle(idle: str) -> None:
    most = AUTOSCALING["max_replicas"]
    with Load(idle) as load:
        wait_for(dict.fromkeys(SCALED, most), f"scaled out under load, answers {load.answers}")
    assert set(load.answers) <= {200, 202, 503}, load.answers
    seen = wait_for(dict.fromkeys(SCALED, AUTOSCALING["min_replicas"]), "scaled in when idle")
    assert seen[0] == dict.fromkeys(SCALED, most)  # from the top, down to the minimum
    assert all(max(state.values()) <= most for state in seen)
