"""Separation on the real Serve app: fractional GPUs, fan-out, S3 URLs, exact results."""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from demucs.apply import apply_model
from ray import serve

from config.app_args import MODEL_ENV
from pipelines import audio
from pipelines.separation import load_model
from tests.audio_factory import random_bytes, sine_mix
from tests.s3server import DEFAULT_PORT, PORT_ENV
from tests.serve.conftest import APP
from tests.serving import follow_job

pytestmark = pytest.mark.serve

RATE = 44100


def worker_stats(calls: int = 60) -> dict[str, dict[str, Any]]:
    """Stats of every DemucsWorker replica the router reaches in ``calls`` calls."""
    handle = serve.get_deployment_handle("DemucsWorker", APP)
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(calls):
        stats = handle.stats.remote().result(timeout_s=30)
        seen[stats["replica"]] = stats
        if len(seen) == 2 and calls > 20:
            break
    return seen


def reference(
    model_repo: Path, wav: np.ndarray, *, shifts: int, overlap: float, seed: int
) -> np.ndarray:
    """What Demucs itself computes: separate.py's normalisation around apply_model, with
    Python's ``random`` seeded as the job's seed seeds its shift offsets."""
    model = load_model("tiny_htdemucs", model_repo).models[0]
    mix = torch.from_numpy(wav)
    ref = mix.mean(0)
    normed = (mix - ref.mean()) / ref.std()
    state = random.getstate()
    random.seed(seed)
    try:
        out = apply_model(model, normed[None], shifts=shifts, split=True, overlap=overlap)[0]
    finally:
        random.setstate(state)
    return (out * ref.std() + ref.mean()).numpy()


@pytest.fixture(scope="module")
def served(served_fresh: str) -> str:
    """Placement and routing are checked here: the app is deployed anew for this module."""
    return served_fresh


def test_two_workers_share_one_logical_gpu(served: str) -> None:
    replicas = worker_stats()
    assert len(replicas) == 2
    gpu_ids = [tuple(stats["gpu_ids"]) for stats in replicas.values()]
    assert len(gpu_ids[0]) == 1 and gpu_ids[0] == gpu_ids[1]  # 2 x 0.5 packed on one GPU
    transcriber = serve.get_deployment_handle("Transcriber", APP).stats.remote().result()
    assert len(transcriber["gpu_ids"]) == 1 and tuple(transcriber["gpu_ids"]) != gpu_ids[0]
    assert all(stats["device"] == "cpu" for stats in replicas.values())  # logical GPU only
    assert all(stats["threads"] == stats["openmp_threads"] == 1 for stats in replicas.values())
    tunables = MODEL_ENV["GLIBC_TUNABLES"]  # malloc in huge pages, in model replicas
    assert all(stats["glibc_tunables"] == tunables for stats in replicas.values())
    # The OpenMP pool is the configured threads, not Ray's num_cpus (0.1 here).
    assert transcriber["threads"] == transcriber["openmp_threads"] == 2
    assert transcriber["glibc_tunables"] == tunables


def s3_port() -> int:
    return int(os.environ.get(PORT_ENV, DEFAULT_PORT))


def uploaded(client: httpx.Client, data: bytes) -> str:
    """The upload id of ``data``, stored through its presigned URL (straight to S3)."""
    reserve = {"filename": "song.wav", "content_type": "audio/wav", "bytes": len(data)}
    upload = client.post("/v1/uploads", json=reserve).json()
    assert upload["put_url"].startswith(f"http://127.0.0.1:{s3_port()}/")
    put = httpx.put(upload["put_url"], content=data, headers=upload["headers"])
    assert put.status_code == 200, put.text
    return str(upload["upload_id"])


def test_full_separation_matches_apply_model(served: str, serve_model_repo: Path) -> None:
    song = sine_mix(20.0, RATE, channels=2, seed=5)
    data = audio.encode(song, RATE, format="wav", bit_depth=16)
    song = audio.decode(data, sample_rate=RATE, channels=2)  # what the service will read
    before = {r: s["windows"] for r, s in worker_stats().items()}
    with httpx.Client(base_url=served, timeout=60) as client:
        upload_id = uploaded(client, data)
        params = {
            "format": "wav", "bit_depth": 32, "clip": "none", "shifts": 1, "overlap": 0.37,
            "seed": 7,
        }  # fmt: skip
        body = {"input": {"upload_id": upload_id}, **params}
        accepted = client.post("/v1/separations", json=body)
        assert accepted.status_code == 202, accepted.text
        done = follow_job(client, accepted.json())
        assert done["status"] == "succeeded", done["error"]
        stems = {
            name: httpx.get(link["url"]).content for name, link in done["result"]["outputs"].items()
        }
        archive = httpx.get(done["result"]["archive"]["url"]).content
    assert list(stems) == ["drums", "bass", "other", "vocals"]
    expected = reference(serve_model_repo, song, shifts=1, overlap=0.37, seed=7)
    for index, (name, payload) in enumerate(stems.items()):
        info = audio.probe(payload)
        assert (info.sample_rate, info.channels, info.codec) == (RATE, 2, "pcm_f32le")
        assert abs(info.duration - 20.0) < 1e-3
        stem = audio.decode(payload, sample_rate=RATE, channels=2)
        assert float(np.max(np.abs(stem - expected[index]))) <= 1e-4, name
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        assert sorted(bundle.namelist()) == sorted(f"{n}.wav" for n in stems)
        assert all(bundle.read(f"{n}.wav") == payload for n, payload in stems.items())
    progress = done["_progress_seen"]
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 2
    after = worker_stats()
    assert all(after[r]["windows"] > before.get(r, 0) for r in after), "a worker did no windows"


def test_concurrent_jobs_share_forward_passes_and_each_equals_apply_model(
    served: str, serve_model_repo: Path
) -> None:
    """Three jobs at once, each with its own shifts, overlap and seed: their windows go
    through shared forward passes, and each job's stems still equal its own apply_model.

    The inputs are uploaded first and the jobs posted back to back, the longest first,
    so that every job's windows are in flight together."""
    jobs = [(2, 0.5, 3, 5), (1, 0.37, 2, 4), (0, 0.25, 1, 3)]  # shifts, overlap, seed, track
    songs = {}
    before = sum(s["shared_passes"] for s in worker_stats().values())
    with httpx.Client(base_url=served, timeout=60) as client:
        bodies = []
        for shifts, overlap, seed, track in jobs:
            data = audio.encode(sine_mix(8.0, RATE, channels=2, seed=track), RATE, format="wav")
            songs[seed] = audio.decode(data, sample_rate=RATE, channels=2)
            bodies.append({"input": {"upload_id": uploaded(client, data)}, "format": "wav",
                           "bit_depth": 32, "clip": "none", "shifts": shifts,
                           "overlap": overlap, "seed": seed})  # fmt: skip
        accepted = []
        for body in bodies:
            reply = client.post("/v1/separations", json=body)
            assert reply.status_code == 202, reply.text
            accepted.append(reply.json())
        done = [follow_job(client, job) for job in accepted]
        stems = [
            {name: httpx.get(link["url"]).content for name, link in d["result"]["outputs"].items()}
            for d in done
        ]
    after = sum(s["shared_passes"] for s in worker_stats().values())
    assert after > before, "no forward pass held windows of more than one job"
    for (shifts, overlap, seed, _), outputs in zip(jobs, stems, strict=True):
        expected = reference(
            serve_model_repo, songs[seed], shifts=shifts, overlap=overlap, seed=seed
        )
        for index, payload in enumerate(outputs.values()):
            stem = audio.decode(payload, sample_rate=RATE, channels=2)
            assert float(np.max(np.abs(stem - expected[index]))) <= 1e-4, (shifts, overlap)


def test_second_model_is_multiplexed(served: str) -> None:
    data = audio.encode(sine_mix(3.0, RATE), RATE, format="flac")
    with httpx.Client(base_url=served, timeout=60) as client:
        form = {"model": "demucs_unittest", "two_stems": "vocals", "format": "mp3"}
        response = client.post("/v1/separations", files={"file": ("a.flac", data)}, data=form)
        assert response.status_code == 202, response.text
        done = follow_job(client, response.json())
    assert done["status"] == "succeeded", done["error"]
    assert set(done["result"]["outputs"]) == {"vocals", "no_vocals"}
    assert done["result"]["model"] == "demucs_unittest"


@pytest.mark.parametrize(
    ("make", "fields", "status", "code"),
    [
        (lambda: random_bytes(4096), {}, 415, "unsupported_audio"),
        (lambda: audio.encode(sine_mix(1.0), RATE), {"model": "nope"}, 400, "unknown_model"),
        (lambda: audio.encode(sine_mix(1.0), RATE), {"stems": "guitar"}, 400, "unknown_stem"),
        (lambda: audio.encode(sine_mix(60.0), RATE), {}, 413, "payload_too_large"),
    ],
)
def test_errors_through_the_proxy(
    served: str, make: Any, fields: dict[str, str], status: int, code: str
) -> None:
    response = httpx.post(
        f"{served}/v1/separations", files={"file": ("x.wav", make())}, data=fields, timeout=60
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    if code == "unknown_model":
        assert response.json()["error"]["details"]["available"] == [
            "demucs_unittest",
            "tiny_htdemucs",
        ]


def test_unknown_job_is_404(served: str) -> None:
    response = httpx.get(f"{served}/v1/jobs/00000000000000000000", timeout=30)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_model_replicas_answer_their_health_check(served: str) -> None:
    # After the jobs above, each replica holds a model: Serve's periodic
    # check_health now calls into it (pipelines.probes) and keeps it HEALTHY.
    for name in ("DemucsWorker", "Transcriber"):
        assert serve.get_deployment_handle(name, APP).check_health.remote().result() is None
    deployments = serve.status().applications[APP].deployments
    for name in ("DemucsWorker", "Transcriber"):
        assert deployments[name].status == "HEALTHY", deployments[name].message
