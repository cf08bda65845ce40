"""A bounded chaos soak on loopback: mixed load while replicas die and storage restarts.

Starts its own SeaweedFS S3 server (harness/s3server.py) and the app on a local Ray
cluster (tiny Demucs and tiny.en on CPU; two JobCoordinator and two DemucsWorker
replicas). First each input is run once undisturbed (the references). Then for
``--minutes``, clients keep separations (multipart and by upload), transcriptions and
live sessions going while, every ``--chaos-every`` seconds on average, a random
DemucsWorker or JobCoordinator replica is killed or the S3 server is restarted. Then
it waits (bounded) for every accepted job and reports, per kind: submitted, succeeded,
failed by error code, lost (accepted and never final, or gone), false successes (a
success whose outputs are missing, short, or differ from the undisturbed run), and
requests refused at submission. Targets: 0 lost, 0 false successes, sampled outputs
byte-identical. Writes the ``soak`` section of docs/RELIABILITY.md.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 4] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemscribe_client.stream import stream_file

from bench.common import ROOT, bench_port, machine, write_section
from config import AppArgs
from harness.audio import sine_mix
from harness.models import TINY_HTDEMUCS, save_random_htdemucs
from harness.s3server import S3Server
from harness.serving import deploy, tiny_app_args, wait_ready
from pipelines import audio

APP = "soak"
RELIABILITY = ROOT / "docs" / "RELIABILITY.md"
SPEECH = ROOT / "tests" / "fixtures" / "speech"
RATE = 44100
FINAL = ("succeeded", "failed", "cancelled")
KINDS = ("separation", "upload", "transcription", "live")
INPUTS = 3
"""Distinct songs; every separation of one must give the same bytes as its reference."""


def app_args(repo: Path) -> AppArgs:
    quick_stop = {"graceful_shutdown_timeout_s": 1}
    return tiny_app_args(
        repo,
        coordinator={"num_replicas": 2, "max_ongoing_requests": 8, **quick_stop},
        demucs_worker={"num_replicas": 2, **quick_stop},
        jobs={"stale_after_seconds": 20, "reaper_interval_seconds": 2},
    )


@dataclass
class Tally:
    """What happened to every request and job of one kind."""

    submitted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    false_successes: list[str] = field(default_factory=list)
    compared: int = 0
    identical: int = 0


@dataclass
class Soak:
    base: str
    s3: S3Server
    until: float
    references: dict[str, Any]
    tallies: dict[str, Tally] = field(default_factory=lambda: {k: Tally() for k in KINDS})
    accepted: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, job id, reference key) of every 202."""
    chaos: Counter[str] = field(default_factory=Counter)


def song(index: int) -> bytes:
    return audio.encode(sine_mix(4.0, RATE, seed=100 + index), RATE, format="wav")


SEPARATION_FORM = {"stems": "drums,vocals", "shifts": "0", "format": "wav"}


async def submit(soak: Soak, client: httpx.AsyncClient, kind: str, rng: random.Random) -> None:
    tally = soak.tallies[kind]
    index = rng.randrange(INPUTS)
    try:
        if kind == "transcription":
            key = "speech"
            data = (SPEECH / "weather.wav").read_bytes()
            response = await client.post("/v1/transcriptions", files={"file": ("w.wav", data)})
        elif kind == "upload":
            key, data = f"song{index}", song(index)
            reserved = await client.post(
                "/v1/uploads", json={"filename": "s.wav", "bytes": len(data)}
            )
            if reserved.status_code != 201:
                tally.refused[f"upload {reserved.status_code}"] += 1
                return
            upload = reserved.json()
            put = await client.put(upload["put_url"], content=data, headers=upload["headers"])
            if put.status_code != 200:
                tally.refused[f"put {put.status_code}"] += 1
                return
            body = {"input": {"upload_id": upload["upload_id"]}, "stems": ["drums", "vocals"]}
            response = await client.post("/v1/separations", json={**body, "shifts": 0})
        else:
            key, data = f"song{index}", song(index)
            files = {"file": ("s.wav", data)}
            response = await client.post("/v1/separations", files=files, data=SEPARATION_FORM)
    except httpx.HTTPError as exc:
        tally.refused[type(exc).__name__] += 1
        return
    if response.status_code != 202:
        code = _code(response)
        tally.refused[f"{response.status_code} {code}"] += 1
        return
    tally.submitted += 1
    soak.accepted.append((kind, response.json()["job_id"], key))


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "no JSON error"


async def live(soak: Soak) -> None:
    url = soak.base.replace("http://", "ws://", 1) + "/v1/stream/transcriptions"
    tally = soak.tallies["live"]
    tally.submitted += 1
    try:
        result = await stream_file(url, SPEECH / "numbers.wav", speed=4.0)
    except Exception as exc:  # a dropped connection is an outcome, not a crash
        tally.outcomes[f"dropped ({type(exc).__name__})"] += 1
        return
    errors = [m.get("code", "?") for m in result.of_type("error")]
    if errors:
        tally.outcomes[f"error {errors[0]}"] += 1
    elif result.finals and result.close_code == 1000:
        tally.outcomes["completed"] += 1
    else:
        tally.outcomes[f"closed {result.close_code} with {len(result.finals)} finals"] += 1


async def client_loop(soak: Soak, seed: int) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=soak.base, timeout=60) as client:
        while time.monotonic() < soak.until:
            kind = rng.choices(KINDS, weights=(0.35, 0.25, 0.25, 0.15))[0]
            if kind == "live":
                await live(soak)
            else:
                await submit(soak, client, kind, rng)
            await asyncio.sleep(rng.uniform(0.5, 2.0))


async def chaos_loop(soak: Soak, every: float, seed: int) -> None:
    rng = random.Random(seed)
    while True:
        await asyncio.sleep(rng.uniform(0.5 * every, 1.5 * every))
        if time.monotonic() >= soak.until:
            return
        action = rng.choice(("DemucsWorker", "JobCoordinator", "s3"))
        if action == "s3":
            await asyncio.to_thread(soak.s3.stop)
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            await asyncio.to_thread(soak.s3.start)
        else:
            replicas = await asyncio.to_thread(_replicas, action)
            if not replicas:
                continue
            await asyncio.to_thread(_kill, rng.choice(replicas))
        soak.chaos[action] += 1


def _replicas(deployment: str) -> list[str]:
    import ray

    prefix = f"SERVE_REPLICA::{APP}#{deployment}#"
    named = ray.util.list_named_actors(all_namespaces=True)
    return sorted(a["name"] for a in named if a["name"].startswith(prefix))


def _kill(name: str) -> None:
    import ray

    with contextlib.suppress(ValueError):  # gone already (Serve replaced it)
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)


async def final_view(client: httpx.AsyncClient, job_id: str, deadline: float) -> dict[str, Any]:
    """The job once final; ``{"status": "lost"}`` if it never gets there or is gone."""
    while time.monotonic() < deadline:
        try:
            response = await client.get(f"/v1/jobs/{job_id}")
        except httpx.HTTPError:
            await asyncio.sleep(1.0)
            continue
        if response.status_code == 404:
            return {"status": "lost", "why": "404"}
        if response.status_code == 200 and response.json()["status"] in FINAL:
            return dict(response.json())
        await asyncio.sleep(1.0)
    return {"status": "lost", "why": "never final"}


async def outputs_of(client: httpx.AsyncClient, view: dict[str, Any]) -> dict[str, bytes] | None:
    """Every output of a succeeded job, or None if one is missing or short."""
    found = {}
    for name, link in view["result"]["outputs"].items():
        response = await client.get(link["url"])
        if response.status_code != 200 or len(response.content) != link["bytes"]:
            return None
        found[name] = response.content
    return found


def comparable(kind: str, outputs: dict[str, bytes]) -> dict[str, bytes]:
    """Outputs that must be byte-identical across runs."""
    return outputs


async def account(soak: Soak, drain: float, sample: float, seed: int) -> None:
    rng = random.Random(seed)
    deadline = time.monotonic() + drain
    async with httpx.AsyncClient(base_url=soak.base, timeout=60) as client:
        for kind, job_id, key in soak.accepted:
            tally = soak.tallies[kind]
            view = await final_view(client, job_id, deadline)
            status = view["status"]
            if status == "lost":
                tally.lost.append(f"{job_id} ({view['why']})")
                continue
            if status == "failed":
                tally.outcomes[f"failed {view['error']['code']}"] += 1
                continue
            tally.outcomes[status] += 1
            if status != "succeeded":
                continue
            outputs = await outputs_of(client, view)
            if outputs is None:
                tally.false_successes.append(f"{job_id}: an output missing or short")
            elif rng.random() < sample:
                tally.compared += 1
                same = comparable(kind, outputs) == comparable(kind, soak.references[key])
                tally.identical += same
                if not same:
                    tally.false_successes.append(f"{job_id}: differs from the undisturbed run")


async def references(base: str) -> dict[str, Any]:
    """Each input run once, undisturbed: the outputs every later run must reproduce."""
    found: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        jobs = {}
        for index in range(INPUTS):
            files = {"file": ("s.wav", song(index))}
            response = await client.post("/v1/separations", files=files, data=SEPARATION_FORM)
            jobs[f"song{index}"] = response.json()["job_id"]
        speech = (SPEECH / "weather.wav").read_bytes()
        response = await client.post("/v1/transcriptions", files={"file": ("w.wav", speech)})
        jobs["speech"] = response.json()["job_id"]
        for key, job_id in jobs.items():
            view = await final_view(client, job_id, time.monotonic() + 300)
            if view["status"] != "succeeded":
                raise RuntimeError(f"undisturbed reference {key} ended {view}")
            outputs = await outputs_of(client, view)
            if outputs is None:
                raise RuntimeError(f"undisturbed reference {key}: outputs incomplete")
            found[key] = outputs
    return found


async def soak_run(base: str, s3: Any, opts: argparse.Namespace) -> Soak:
    refs = await references(base)
    soak = Soak(base, s3, time.monotonic() + opts.minutes * 60, refs)
    chaos = asyncio.create_task(chaos_loop(soak, opts.chaos_every, opts.seed))
    await asyncio.gather(*(client_loop(soak, opts.seed + i) for i in range(opts.clients)))
    await chaos
    if not s3.running:
        await asyncio.to_thread(s3.start)
    await account(soak, opts.drain, opts.sample, opts.seed)
    return soak


def report(opts: argparse.Namespace, soak: Soak) -> str:
    def cell(counter: Counter[str]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items())) or "–"

    rows = [
        "| | " + " | ".join(KINDS) + " |",
        "|---|" + "---|" * len(KINDS),
    ]
    lines = {
        "accepted (202) / sessions opened": lambda t: str(t.submitted),
        "final outcomes": lambda t: cell(t.outcomes),
        "**lost**": lambda t: str(len(t.lost)),
        "**false successes**": lambda t: str(len(t.false_successes)),
        "sampled outputs identical": lambda t: f"{t.identical} / {t.compared}",
        "refused at submission": lambda t: cell(t.refused),
    }
    for label, value in lines.items():
        rows.append(f"| {label} | " + " | ".join(value(soak.tallies[k]) for k in KINDS) + " |")
    lost = sum(len(t.lost) for t in soak.tallies.values())
    false = sum(len(t.false_successes) for t in soak.tallies.values())
    compared = sum(t.compared for t in soak.tallies.values())
    identical = sum(t.identical for t in soak.tallies.values())
    verdict = "met" if lost == 0 and false == 0 and identical == compared else "**NOT met**"
    details = [f"- {d}" for t in soak.tallies.values() for d in t.lost + t.false_successes]
    return "\n".join(
        [
            f"Machine: {machine()}. {opts.minutes:g} min of load, {opts.clients} clients; chaos "
            f"about every {opts.chaos_every:g} s: {cell(soak.chaos)}.",
            "",
            *rows,
            "",
            f"Targets (0 lost, 0 false successes, sampled outputs byte-identical): {verdict}.",
            *details,
            "",
            f"Command: `.venv/bin/python bench/soak.py --minutes {opts.minutes:g} "
            f"--clients {opts.clients} --chaos-every {opts.chaos_every:g}`",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--chaos-every", type=float, default=20.0, help="mean seconds")
    parser.add_argument("--drain", type=float, default=300.0, help="max wait for jobs after")
    parser.add_argument("--sample", type=float, default=0.5, help="share of outputs compared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="print; leave the docs be")
    opts = parser.parse_args()
    import ray
    from ray import serve

    from deployments.app import compose

    port = bench_port(29100)
    with tempfile.TemporaryDirectory(prefix="stemscribe-soak-") as tmp:
        work = Path(tmp)
        save_random_htdemucs(work / "models", "tiny_htdemucs", seed=0, **TINY_HTDEMUCS)
        with S3Server(work / "s3", bucket="soak") as s3:
            ray.init(
                num_cpus=2 * (os.cpu_count() or 2), include_dashboard=False, log_to_driver=False
            )
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            try:
                deploy(compose(app_args(work / "models"), s3.settings()), APP)
                base = f"http://127.0.0.1:{port}"
                wait_ready(base)
                soak = asyncio.run(soak_run(base, s3, opts))
            finally:
                serve.shutdown()
                ray.shutdown()
    body = report(opts, soak)
    print(body)
    if not opts.no_record:
        write_section("soak", body, RELIABILITY)


if __name__ == "__main__":
    main()
