"""Custom Ray Serve metrics, exported on each node's metrics port with a ``ray_`` prefix.

Names and labels are what ``k8s/grafana-dashboard.json`` and docs/OPERATIONS.md use.
Serve adds the deployment, replica and application labels itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ray.serve.metrics import Counter, Gauge, Histogram

from pipelines.errors import StorageUnavailable
from pipelines.jobs import JobRecord


def _keys(*names: str) -> Any:
    """Tag keys as Ray wants them (its annotation admits only one key; any tuple works)."""
    return tuple(names)


JOBS = Counter(
    "stemscribe_jobs", "Jobs that reached a final status.", tag_keys=_keys("kind", "status")
)
AUDIO_SECONDS = Counter(
    "stemscribe_audio_seconds",
    "Seconds of audio processed by finished jobs.",
    tag_keys=_keys("kind", "model"),
)
REALTIME_FACTOR = Histogram(
    "stemscribe_realtime_factor",
    "Processing time over audio duration of a succeeded job (below 1: faster than real time).",
    boundaries=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0],
    tag_keys=_keys("kind", "model"),
)
WINDOWS_PER_BATCH = Histogram(
    "stemscribe_windows_per_batch",
    "Demucs windows in one DemucsWorker forward pass.",
    boundaries=[1, 2, 4, 8, 16, 32],
)
STAGE_SECONDS = Histogram(
    "stemscribe_stage_seconds",
    "Seconds a finished job spent per stage (decode, queue_wait, forward, stitch, encode, "
    "upload, fetch), summed over the job.",
    boundaries=[0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
    tag_keys=_keys("kind", "stage"),
)
QUEUE_DEPTH = Gauge(
    "stemscribe_queue_depth",
    "Jobs a JobCoordinator replica holds right now.",
    tag_keys=_keys("kind"),
)
STREAM_SESSIONS = Gauge(
    "stemscribe_stream_sessions", "Open live-transcription sessions on an Ingress replica."
)
STORAGE_ERRORS = Counter(
    "stemscribe_storage_errors",
    "Storage calls that failed (after the backend's own retries).",
    tag_keys=_keys("operation"),
)


class JobMeter:
    """Counts what one coordinator replica holds, and records each finished job."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    @contextmanager
    def holding(self, kind: str) -> Iterator[None]:
        self._held[kind] = self._held.get(kind, 0) + 1
        QUEUE_DEPTH.set(self._held[kind], tags={"kind": kind})
        try:
            yield
        finally:
            self._held[kind] -= 1
            QUEUE_DEPTH.set(self._held[kind], tags={"kind": kind})

    @staticmethod
    def finished(record: JobRecord) -> None:
        JOBS.inc(tags={"kind": record.kind, "status": record.status.value})
        for stage, seconds in record.timings.items():
            STAGE_SECONDS.observe(seconds, tags={"kind": record.kind, "stage": stage})
        duration = float(record.info.get("duration") or 0.0)
        if record.status.value != "succeeded" or duration <= 0:
            return
        tags = {"kind": record.kind, "model": str(record.info.get("model", ""))}
        AUDIO_SECONDS.inc(duration, tags=tags)
        if record.started_at and record.finished_at:
            REALTIME_FACTOR.observe((record.finished_at - record.started_at) / duration, tags=tags)


class MeteredStorage:
    """A storage backend whose failures are counted per operation."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute
        return _metered(name, attribute)


def _metered(operation: str, call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except StorageUnavailable:
            STORAGE_ERRORS.inc(tags={"operation": operation})
            raise

    return wrapper
