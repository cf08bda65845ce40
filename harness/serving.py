"""Deploying the app and waiting until it answers ready: for benchmarks and tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

__all__ = ["deploy", "wait_ready"]


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
