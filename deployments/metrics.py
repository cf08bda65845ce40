"""Custom Ray Serve metrics, exported on each node's metrics port with a ``ray_`` prefix.

Names and labels are what ``k8s/grafana-dashboard.json`` and docs/OPERATIONS.md use.
Serve adds the deployment, replica and application labels itself, but only to a metric
created inside a replica: each one here is created on its first use (`Deferred`), not
when a replica process imports this module, before Serve has set the replica's context.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ray.serve.metrics import Counter, Gauge, Histogram
from ray.util.metrics import Metric

from pipelines.jobs import JobRecord
from pipelines.jobs.kinds import JobKind

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # the Ingress imports this module and never loads torch
    from pipelines.separation import PassReport


def _keys(*names: str) -> Any:
    """Tag keys as Ray wants them (its annotation admits only one key; any tuple works)."""
    return tuple(names)


class Deferred:
    """A Serve metric created on its first record, in the process that records it."""

    def __init__(self, kind: type[Metric], name: str, description: str, **options: Any) -> None:
        self.kind = kind
        self.name = name
        self.description = description
        self._options = options
        self._metric: Any = None
        self._last: dict[tuple[tuple[str, str], ...], tuple[float, dict[str, str] | None]] = {}
        self._lock = threading.Lock()

    def _created(self) -> Any:
        with self._lock:
            if self._metric is None:
                self._metric = self.kind(self.name, self.description, **self._options)
            return self._metric

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self._created().inc(value, tags=tags)

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        """Set a gauge, and keep setting it: Ray drops a gauge not set for ~20 s."""
        self._created().set(value, tags=tags)
        with self._lock:
            self._last[tuple(sorted((tags or {}).items()))] = (value, tags)
        _REFRESHER.watch(self)

    def refresh(self) -> None:
        """Set each of the gauge's series again to its last value."""
        with self._lock:
            last = list(self._last.values())
        for value, tags in last:
            self._created().set(value, tags=tags)

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._created().observe(value, tags=tags)


class _Refresher:
    """Sets every gauge of this process again every few seconds, from one daemon thread.

    A worker exports a gauge only when it is set, and the metrics agent forgets a
    series after two export intervals without one; a gauge that holds still (sessions
    open, jobs queued) would vanish from Prometheus while it is true.
    """

    INTERVAL_S = 5.0

    def __init__(self) -> None:
        self._gauges: set[Deferred] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, gauge: Deferred) -> None:
        with self._lock:
            self._gauges.add(gauge)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="stemscribe-gauges", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.INTERVAL_S)
            with self._lock:
                gauges = list(self._gauges)
            for gauge in gauges:
                try:
                    gauge.refresh()
                except Exception:  # a metric must never stop, nor stop the replica
                    log.exception("could not refresh gauge %s", gauge.name)


_REFRESHER = _Refresher()

JOBS = Deferred(
    Counter,
    "stemscribe_jobs",
    "Jobs that reached a final status.",
    tag_keys=_keys("kind", "status"),
)
AUDIO_SECONDS = Deferred(
    Counter,
    "stemscribe_audio_seconds",
    "Seconds of audio processed by finished jobs.",
    tag_keys=_keys("kind", "model"),
)
REALTIME_FACTOR = Deferred(
    Histogram,
    "stemscribe_realtime_factor",
    "Processing time over audio duration of a succeeded job (below 1: faster than real time).",
    boundaries=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0],
    tag_keys=_keys("kind", "model"),
)
WINDOWS_PER_BATCH = Deferred(
    Histogram,
    "stemscribe_windows_per_batch",
    "Demucs windows in one DemucsWorker forward pass.",
    boundaries=[1, 2, 4, 8, 16, 32],
)
WINDOWS = Deferred(
    Counter,
    "stemscribe_windows",
    "Demucs windows through DemucsWorker forward passes. Over windows_per_batch_count it "
    "is the mean batch: Ray exports a histogram's sum as bucket midpoints, not the values.",
)
JOBS_PER_PASS = Deferred(
    Histogram,
    "stemscribe_jobs_per_pass",
    "Separation jobs whose windows shared one DemucsWorker forward pass.",
    boundaries=[1, 2, 3, 4, 8, 16],
)
PASS_WAIT = Deferred(
    Histogram,
    "stemscribe_pass_wait_seconds",
    "Seconds a DemucsWorker call waited for its forward pass to start.",
    boundaries=[0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
)
FORWARD_SECONDS = Deferred(
    Histogram,
    "stemscribe_forward_seconds",
    "Seconds of one DemucsWorker forward pass.",
    boundaries=[0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
)
STAGE_SECONDS = Deferred(
    Histogram,
    "stemscribe_stage_seconds",
    "Seconds a finished job spent per stage (decode, queue_wait, forward, stitch, encode, "
    "upload, fetch), summed over the job.",
    boundaries=[0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
    tag_keys=_keys("kind", "stage"),
)
QUEUE_DEPTH = Deferred(
    Gauge,
    "stemscribe_queue_depth",
    "Jobs accepted and not yet started (status queued), store-wide, as of this replica's "
    "last reaper pass; every JobCoordinator replica reports the same count: aggregate "
    "with max, not sum.",
    tag_keys=_keys("kind"),
)
JOBS_RUNNING = Deferred(
    Gauge,
    "stemscribe_jobs_running",
    "Jobs this JobCoordinator replica is running right now.",
    tag_keys=_keys("kind"),
)
# Seconds, from a few seconds to the longest job (30 minutes of audio) and beyond.
_WAIT_BOUNDARIES: list[float] = [1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200]
QUEUE_WAIT = Deferred(
    Histogram,
    "stemscribe_queue_wait_seconds",
    "From acceptance of a job to the start of its (last) run, per finished job.",
    boundaries=_WAIT_BOUNDARIES,
    tag_keys=_keys("kind"),
)
JOB_DURATION = Deferred(
    Histogram,
    "stemscribe_job_duration_seconds",
    "From acceptance of a job to its final status (what the client waits), per job.",
    boundaries=_WAIT_BOUNDARIES,
    tag_keys=_keys("kind", "status"),
)
JOB_FAILURES = Deferred(
    Counter,
    "stemscribe_job_failures",
    "Jobs that failed, by the error code their record carries (the API's error codes).",
    tag_keys=_keys("kind", "code"),
)
STREAM_SESSIONS = Deferred(
    Gauge, "stemscribe_stream_sessions", "Open live-transcription sessions on an Ingress replica."
)
STORAGE_ERRORS = Deferred(
    Counter,
    "stemscribe_storage_errors",
    "Storage calls that failed (after the backend's own retries).",
    tag_keys=_keys("operation"),
)


APP_METRICS = (
    JOBS,
    AUDIO_SECONDS,
    REALTIME_FACTOR,
    WINDOWS_PER_BATCH,
    WINDOWS,
    JOBS_PER_PASS,
    PASS_WAIT,
    FORWARD_SECONDS,
    STAGE_SECONDS,
    QUEUE_DEPTH,
    JOBS_RUNNING,
    QUEUE_WAIT,
    JOB_DURATION,
    JOB_FAILURES,
    STREAM_SESSIONS,
    STORAGE_ERRORS,
)
"""Every metric the app defines: what dashboards and alerts may plot."""


def record_pass(report: PassReport) -> None:
    """One DemucsWorker forward pass: its windows, jobs, waits and time."""
    WINDOWS_PER_BATCH.observe(report.windows)
    WINDOWS.inc(report.windows)
    JOBS_PER_PASS.observe(report.jobs)
    FORWARD_SECONDS.observe(report.forward_seconds)
    for wait in report.waits:
        PASS_WAIT.observe(wait)


class JobMeter:
    """Counts what one coordinator replica runs, and records each finished job."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    @contextmanager
    def holding(self, kind: str) -> Iterator[None]:
        self._held[kind] = self._held.get(kind, 0) + 1
        JOBS_RUNNING.set(self._held[kind], tags={"kind": kind})
        try:
            yield
        finally:
            self._held[kind] -= 1
            JOBS_RUNNING.set(self._held[kind], tags={"kind": kind})

    @staticmethod
    def finished(record: JobRecord) -> None:
        status = record.status.value
        JOBS.inc(tags={"kind": record.kind, "status": status})
        if status == "failed":
            code = str((record.error or {}).get("code") or "unknown")
            JOB_FAILURES.inc(tags={"kind": record.kind, "code": code})
        if record.finished_at:
            waited = record.finished_at - record.created_at
            JOB_DURATION.observe(max(0.0, waited), tags={"kind": record.kind, "status": status})
        if record.started_at:
            QUEUE_WAIT.observe(
                max(0.0, record.started_at - record.created_at), tags={"kind": record.kind}
            )
        for stage, seconds in record.timings.items():
            STAGE_SECONDS.observe(seconds, tags={"kind": record.kind, "stage": stage})
        duration = float(record.info.get("duration") or 0.0)
        if status != "succeeded" or duration <= 0:
            return
        tags = {"kind": record.kind, "model": str(record.info.get("model", ""))}
        AUDIO_SECONDS.inc(duration, tags=tags)
        if record.started_at and record.finished_at:
            REALTIME_FACTOR.observe((record.finished_at - record.started_at) / duration, tags=tags)


class BacklogGauge:
    """Publishes the reaper's count of queued jobs; kinds seen before drop to 0."""

    def __init__(self) -> None:
        # Every kind from the first pass on: no backlog is a 0, not a missing series.
        self._kinds: set[str] = {kind.value for kind in JobKind}

    def __call__(self, queued: Mapping[str, int]) -> None:
        self._kinds |= set(queued)
        for kind in self._kinds:
            QUEUE_DEPTH.set(queued.get(kind, 0), tags={"kind": kind})


def count_storage_error(operation: str) -> None:
    """A storage call failed (``RetryingStorage`` reports each failed attempt)."""
    STORAGE_ERRORS.inc(tags={"operation": operation})
