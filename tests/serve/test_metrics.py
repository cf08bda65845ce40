"""The app's metrics, scraped from Ray's Prometheus endpoint after real jobs.

Names come from the product's definitions (``deployments.metrics.APP_METRICS``) and
Ray's export rules (a ``ray_`` prefix; ``_total`` on counters; ``_bucket``, ``_sum``,
``_count`` on histograms). The app is deployed afresh, so its replicas' series start
from nothing and what this module runs is all they count (compared with a scrape
taken before). Ray exports every few seconds: each check polls for its value.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families
from ray.util.metrics import Counter, Histogram
from websockets.asyncio.client import connect

from deployments.metrics import (
    APP_METRICS,
    AUDIO_SECONDS,
    JOB_FAILURES,
    JOBS,
    STREAM_SESSIONS,
    WINDOWS,
    WINDOWS_PER_BATCH,
    Deferred,
)
from pipelines import audio
from scripts.make_broken_audio import flac_claiming, silent_flac
from tests.audio_factory import sine_mix
from tests.serve.conftest import PASS_WINDOWS
from tests.serving import APP, follow_job
from tests.speech import speech_path

pytestmark = [pytest.mark.serve, pytest.mark.timeout(300)]

DASHBOARD = Path(__file__).parents[2] / "k8s" / "grafana-dashboard.json"
Sample = tuple[str, frozenset[tuple[str, str]]]

ONLY_WITH = {
    "ray_stemscribe_storage_errors_total": "a storage call failing (tests/faults)",
    "ray_serve_autoscaling_target_replicas": "an autoscaled deployment",
    "ray_serve_deployment_error_counter_total": "a replica call raising",
    "ray_node_gpus_utilization": "a GPU",
    "ray_node_gram_used": "a GPU",
    "autoscaler_active_nodes": "Ray's node autoscaler (a KubeRay cluster)",
    "autoscaler_pending_nodes": "Ray's node autoscaler (a KubeRay cluster)",
    "autoscaler_recently_failed_nodes": "Ray's node autoscaler (a KubeRay cluster)",
}
"""Dashboard series that only exist where their cause does, and what that is. Every
other series the dashboard plots must be in the scrape after this module's jobs."""
ADDED_BY_PROMETHEUS = {"instance", "ray_io_cluster"}


def exported(metric: Deferred) -> list[str]:
    """The series names Ray exports for ``metric``."""
    name = "ray_" + metric.name
    if issubclass(metric.kind, Counter):
        return [f"{name}_total"]
    if issubclass(metric.kind, Histogram):
        return [f"{name}_bucket", f"{name}_sum", f"{name}_count"]
    return [name]


def scrape() -> dict[Sample, float]:
    """Every sample of the head node's metrics endpoint."""
    node = next(n for n in ray.nodes() if n["Alive"])
    text = httpx.get(f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Meter:
    """This module's share of the app's series: now minus the scrape before its jobs."""

    def __init__(self) -> None:
        self.before = scrape()

    def value(self, series: str, **labels: str) -> float:
        now = scrape()
        wanted = set(labels.items())
        return sum(
            value - self.before.get(key, 0.0)
            for key, value in now.items()
            if key[0] == series and wanted <= key[1] and ("application", APP) in key[1]
        )

    def until(self, check: Callable[[], bool], what: str) -> None:
        """Poll until ``check()`` holds: Ray exports what replicas record every few seconds."""
        deadline = time.monotonic() + 90
        while not check():
            assert time.monotonic() < deadline, f"never exported: {what}"
            time.sleep(1.0)


@pytest.fixture(scope="module")
def meter(served_fresh: str) -> Meter:
    return Meter()


@pytest.fixture(scope="module")
def client(served_fresh: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served_fresh, timeout=120) as session:
        yield session


@pytest.fixture(scope="module")
def jobs(meter: Meter, client: httpx.Client) -> dict[str, dict[str, Any]]:
    """A separation and a transcription that succeed, and a separation that fails."""
    song = audio.encode(sine_mix(6.0, 44100, seed=4), 44100, format="wav")
    # Not from the result cache: earlier modules may have run the same inputs.
    form = {"stems": "drums", "shifts": "0", "cache": "false"}
    # Its header says ten seconds; decoding finds 200 (over the 120 s limit): a failed job.
    too_long = flac_claiming(silent_flac(200.0), 80_000)
    submitted = {
        "separated": client.post("/v1/separations", files={"file": ("a.wav", song)}, data=form),
        "transcribed": client.post(
            "/v1/transcriptions",
            files={"file": ("w.wav", speech_path("weather").read_bytes())},
            data={"cache": "false"},
        ),
        "failed": client.post("/v1/separations", files={"file": ("b.flac", too_long)}, data=form),
    }
    done = {}
    for name, accepted in submitted.items():
        assert accepted.status_code == 202, accepted.text
        done[name] = follow_job(client, accepted.json())
    return done


def test_jobs_by_kind_and_status(meter: Meter, jobs: dict[str, dict[str, Any]]) -> None:
    assert [job["status"] for job in jobs.values()] == ["succeeded", "succeeded", "failed"]
    code = jobs["failed"]["error"]["code"]
    (total,) = exported(JOBS)
    (failures,) = exported(JOB_FAILURES)
    expected = {
        (total, "separation", "succeeded"): 1.0,
        (total, "transcription", "succeeded"): 1.0,
        (total, "separation", "failed"): 1.0,
        (total, "transcription", "failed"): 0.0,
    }

    def counted() -> dict[tuple[str, str, str], float]:
        return {key: meter.value(key[0], kind=key[1], status=key[2]) for key in expected}

    meter.until(lambda: counted() == expected, f"{expected}, last {counted()}")
    meter.until(lambda: meter.value(failures, kind="separation", code=code) == 1.0, code)


@pytest.mark.parametrize(
    ("name", "kind"), [("separated", "separation"), ("transcribed", "transcription")]
)
def test_audio_seconds_by_kind_and_model(
    meter: Meter, jobs: dict[str, dict[str, Any]], name: str, kind: str
) -> None:
    (series,) = exported(AUDIO_SECONDS)
    model, duration = jobs[name]["params"]["model"], jobs[name]["result"]["duration"]
    meter.until(
        lambda: meter.value(series, kind=kind, model=model) == pytest.approx(duration, 1e-3),
        f"{duration} s of {kind} by {model}",
    )


def test_windows_per_batch(meter: Meter, jobs: dict[str, dict[str, Any]]) -> None:
    bucket, _, count = exported(WINDOWS_PER_BATCH)
    (windows_total,) = exported(WINDOWS)
    most = PASS_WINDOWS
    meter.until(lambda: meter.value(count) >= 1, "the 6 s separation's passes")
    meter.until(lambda: meter.value(windows_total) >= meter.value(count), "its windows")
    passes, windows = meter.value(count), meter.value(windows_total)
    assert passes <= windows <= passes * most  # every pass holds 1 to `most` windows
    assert meter.value(bucket, le=f"{most:.1f}") == passes
    assert meter.value(bucket, le="+Inf") == passes


def test_live_sessions_gauge(meter: Meter, served_fresh: str) -> None:
    (series,) = exported(STREAM_SESSIONS)
    url = served_fresh.replace("http://", "ws://", 1) + "/v1/stream/transcriptions"

    async def hold() -> None:
        async with connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            await asyncio.to_thread(meter.until, lambda: meter.value(series) == 1.0, "1 open")

    asyncio.run(hold())
    meter.until(lambda: meter.value(series) == 0.0, "0 sessions after the close")


def test_the_dashboard_plots_only_series_that_exist(
    meter: Meter, jobs: dict[str, dict[str, Any]], client: httpx.Client
) -> None:
    assert client.get("/v1/jobs/no-such-job").status_code == 404  # an HTTP error counted
    defined = {name for metric in APP_METRICS for name in exported(metric)}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    wanted = {name for expr in exprs for name in re.findall(r"\b(?:ray|autoscaler)_\w+", expr)}
    wanted -= {"ray_io_cluster"}
    assert {n for n in wanted if n.startswith("ray_stemscribe_")} <= defined
    assert set(ONLY_WITH) <= wanted, "a series listed as conditional is no longer plotted"

    def missing() -> set[str]:
        names = {name for name, _ in scrape()}
        return wanted - names - set(ONLY_WITH)

    meter.until(lambda: not missing(), f"series the dashboard plots: {missing()}")
    labels: dict[str, set[str]] = {}
    for name, pairs in scrape():
        labels.setdefault(name, set()).update(key for key, _ in pairs)
    for expr in exprs:
        grouped = {g.strip() for m in re.findall(r"by \(([^)]*)\)", expr) for g in m.split(",")}
        names = [n for n in re.findall(r"\b(?:ray|autoscaler)_\w+", expr) if n in labels]
        have = set().union(*(labels[n] for n in names)) if names else grouped
        assert grouped - ADDED_BY_PROMETHEUS <= have, f"{expr}: no label {grouped - have}"
