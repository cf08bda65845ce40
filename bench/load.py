"""A bounded load run on loopback: many clients at once against a served app.

Starts its own app (tiny Demucs and tiny.en on CPU, local storage in a temp dir, per
tenant limits off so the run measures the service, not the rate limiter), then runs
``--clients`` concurrent clients for ``--seconds``; each loops over a mix of job
submissions (2 s files), status polls, job listings and SSE follows of its own jobs,
while one live-transcription session streams speech at real time. Then it stops by
itself, waits (bounded) for the jobs it submitted, and reports requests, errors by
status and the status-call latency.

    .venv/bin/python bench/load.py [--clients 16] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemscribe_client.stream import StreamResult, stream_file

from bench.common import machine, publish
from config import AppArgs, Settings
from harness.audio import sine_mix
from harness.models import TINY_HTDEMUCS, save_random_htdemucs
from harness.serving import deploy, tiny_app_args, wait_ready
from pipelines import audio

PORT = 29000
RATE = 44100
SPEECH = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "speech" / "story.wav"
KINDS = ("status", "submit", "events", "list")
WEIGHTS = (0.55, 0.15, 0.15, 0.15)
FINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Tally:
    """Every request made: what, how it ended, how long it took."""

    requests: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    status_latency: list[float] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)

    def record(self, kind: str, outcome: str, seconds: float) -> None:
        self.requests[kind] += 1
        self.outcomes[kind, outcome] += 1
        if kind == "status":
            self.status_latency.append(seconds)


def app_args(repo: Path) -> AppArgs:
    return tiny_app_args(repo)


async def timed(tally: Tally, kind: str, call: Any) -> httpx.Response | None:
    start = time.perf_counter()
    try:
        response: httpx.Response = await call
    except httpx.HTTPError as exc:
        tally.record(kind, type(exc).__name__, time.perf_counter() - start)
        return None
    tally.record(kind, str(response.status_code), time.perf_counter() - start)
    return response


async def follow(client: httpx.AsyncClient, tally: Tally, job_id: str, until: float) -> None:
    """One SSE follow: until the job's ``result`` event, or cut at the end of the run."""
    start = time.perf_counter()
    outcome = "cut at the end of the run"

    async def read() -> None:
        nonlocal outcome
        async with client.stream("GET", f"/v1/jobs/{job_id}/events") as stream:
            outcome = str(stream.status_code)
            async for line in stream.aiter_lines():
                if line.startswith("event: result"):
                    return

    try:
        await asyncio.wait_for(read(), max(0.1, until - time.monotonic()))
    except TimeoutError:
        pass
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    tally.record("events", outcome, time.perf_counter() - start)


async def client_loop(base: str, tally: Tally, upload: bytes, until: float, seed: int) -> None:
    rng = random.Random(seed)
    mine: list[str] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while time.monotonic() < until:
            kind = rng.choices(KINDS, WEIGHTS)[0] if mine else "submit"
            if kind == "submit":
                files = {"file": ("a.flac", upload)}
                post = client.post("/v1/separations", files=files, data={"format": "flac"})
                response = await timed(tally, kind, post)
                if response is not None and response.status_code == 202:
                    mine.append(response.json()["job_id"])
            elif kind == "status":
                await timed(tally, kind, client.get(f"/v1/jobs/{rng.choice(mine)}"))
            elif kind == "list":
                await timed(tally, kind, client.get("/v1/jobs", params={"limit": 20}))
            else:
                await follow(client, tally, rng.choice(mine), until)
            await asyncio.sleep(rng.uniform(0.05, 0.25))
    tally.jobs += mine


async def drain(base: str, jobs: list[str], timeout: float) -> Counter[str]:
    """Final states of ``jobs``, waiting up to ``timeout`` for the unfinished."""
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while True:
            for job_id in [j for j in jobs if states.get(j) not in FINAL]:
                response = await client.get(f"/v1/jobs/{job_id}")
                states[job_id] = response.json()["status"] if response.is_success else "?"
            if all(s in FINAL for s in states.values()) or time.monotonic() > deadline:
                return Counter(states.values())
            await asyncio.sleep(1.0)


async def load(base: str, opts: argparse.Namespace) -> tuple[Tally, StreamResult, Counter[str]]:
    upload = audio.encode(sine_mix(2.0, RATE, seed=1), RATE, format="flac")
    tally = Tally()
    until = time.monotonic() + opts.seconds
    ws = base.replace("http://", "ws://") + "/v1/stream/transcriptions"
    clients = [client_loop(base, tally, upload, until, n) for n in range(opts.clients)]
    session = asyncio.create_task(stream_file(ws, SPEECH))
    await asyncio.gather(*clients)
    states = await drain(base, tally.jobs, opts.drain)
    return tally, await session, states


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else float("nan")


def report(
    opts: argparse.Namespace, tally: Tally, session: StreamResult, states: Counter[str]
) -> str:
    total = sum(tally.requests.values())
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(tally.requests.items()))
    outcomes = "\n".join(
        f"| {k} | {code} | {n} |" for (k, code), n in sorted(tally.outcomes.items())
    )
    latency = tally.status_latency
    errors = sum(n for (_, o), n in tally.outcomes.items() if not o.startswith(("2", "cut")))
    jobs = ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
    return f"""## Load: {opts.clients} clients for {opts.seconds:.0f} s on loopback

One app (Ingress, JobCoordinator, DemucsWorker, Transcriber: one replica each, CPU;
tiny Demucs, tiny.en; local storage), per-tenant limits off. Each client loops over
status polls (55 %), job submissions of a 2 s FLAC (15 %), SSE follows of its jobs
(15 %) and job listings (15 %), 50-250 ms apart; one live-transcription session
streams 17 s of speech at real time alongside.

| | |
|---|---|
| requests | {total} ({total / opts.seconds:.1f}/s): {kinds} |
| errors (not 2xx) | {errors} |
| status calls p50 / p95 | {percentile(latency, 50) * 1000:.0f} ms / {percentile(latency, 95) * 1000:.0f} ms |
| jobs submitted | {len(tally.jobs)}; after up to {opts.drain:.0f} s of draining: {jobs} |
| live session | {len(session.finals)} finals, closed: {session.closed_reason}, {len(session.errors)} errors |

| request | outcome (HTTP status or client error) | count |
|---|---|---|
{outcomes}

Machine: {machine()}
Command: `.venv/bin/python bench/load.py --clients {opts.clients} --seconds {opts.seconds:g}`
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--drain", type=float, default=60.0, help="max wait for jobs after")
    opts = parser.parse_args()
    import ray
    from ray import serve

    from deployments.app import compose

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        save_random_htdemucs(work / "models", "tiny_htdemucs", seed=0, **TINY_HTDEMUCS)
        ray.init(num_cpus=2 * (os.cpu_count() or 2), include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        try:
            settings = Settings(storage_backend="local", data_dir=work / "data")
            deploy(compose(app_args(work / "models"), settings), "bench")
            base = f"http://127.0.0.1:{PORT}"
            wait_ready(base)
            tally, session, states = asyncio.run(load(base, opts))
        finally:
            serve.shutdown()
            ray.shutdown()
    body = report(opts, tally, session, states)
    publish("load", body)


if __name__ == "__main__":
    main()
