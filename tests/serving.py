"""Helpers for tests that talk to a served app over HTTP (deploying and waiting for
readiness live in ``harness.serving``, shared with the benchmarks)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from harness.models import TINY_HTDEMUCS
from harness.serving import deploy, wait_ready

__all__ = ["APP", "TINY_HTDEMUCS", "Stage", "deploy", "follow_job", "sse_events", "wait_ready"]

APP = "stemscribe"
"""The application name every in-process tier deploys under (route ``/``)."""


def sse_events(client: httpx.Client, url: str, timeout: float = 300.0) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of a Server-Sent Events stream until it ends."""
    with client.stream("GET", url, timeout=timeout) as response:
        response.raise_for_status()
        event, data = "message", []
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                yield event, json.loads("\n".join(data))
                event, data = "message", []


def follow_job(client: httpx.Client, job: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Follow a job's SSE stream to its final ``result`` event and return that job view."""
    progress: list[float] = []
    for event, data in sse_events(client, job["events_url"], timeout):
        if event == "progress":
            progress.append(data["progress"])
        if event == "result":
            data["_progress_seen"] = progress
            return dict(data)
    raise AssertionError("event stream ended without a result event")


class Stage:
    """The shared Ray cluster's one application slot (``APP`` on ``/``).

    Deploying the app costs tens of seconds on a small machine, so a configuration stays
    deployed from one test module to the next until a module that needs another one
    takes the slot. ``key`` names a configuration: equal keys must build equal apps.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.current: str | None = None

    def ensure(self, key: str, build: Callable[[], Any], fresh: bool = False) -> str:
        """Deploy ``build()`` unless the configuration named ``key`` is what runs now.

        A new configuration replaces the old one whole (deleted first, not updated in
        place), so replicas are placed as on a cluster that ran nothing before; ``fresh``
        does the same for the configuration that already runs (no model loaded yet).
        """
        if fresh or self.current != key:
            self.clear()
            deploy(build(), APP)
            wait_ready(self.base_url)
            self.current = key
        return self.base_url

    def clear(self) -> None:
        """Delete the application (the next ``ensure`` deploys again)."""
        from ray import serve

        self.current = None
        serve.delete(APP)
