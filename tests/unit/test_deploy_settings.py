"""What a cluster deploy relies on in the app: memory per replica, secrets as files,
no bucket created unless asked, and a backlog count taken from the job records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from config import DeploymentArgs, Settings, parse_app_args
from config.quantity import parse_bytes
from pipelines.jobs import JobRecord, JobStatus, JobStore, new_job_id
from pipelines.jobs.janitor import Janitor
from pipelines.jobs.maintenance import Maintenance
from pipelines.storage import LocalStorage
from pipelines.storage.signing import UrlSigner

pytestmark = pytest.mark.unit


# --- memory per deployment ------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("6Gi", 6 * 2**30),
        ("512Mi", 512 * 2**20),
        ("2GB", 2 * 10**9),
        (1000, 1000),
        ("1.5G", 15 * 10**8),
    ],
)
def test_memory_sizes_are_read_like_kubernetes_quantities(written: object, expected: int) -> None:
    assert parse_bytes(written) == expected


def test_memory_reaches_the_actor_options() -> None:
    args = parse_app_args({"coordinator": {"num_cpus": 1, "memory": "6Gi"}})
    actor = args.coordinator.serve_options()["ray_actor_options"]
    assert actor["num_cpus"] == 1 and actor["memory"] == 6 * 2**30
    assert "memory" not in DeploymentArgs().serve_options()["ray_actor_options"]


@pytest.mark.parametrize("memory", ["6 parsecs", "-1Gi", 0, True])
def test_bad_memory_says_what_to_write(memory: object) -> None:
    with pytest.raises(ValueError, match=r"coordinator\.memory"):
        parse_app_args({"coordinator": {"memory": memory}})


# --- settings -------------------------------------------------------------------------


def test_the_app_creates_no_bucket_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEMSCRIBE_S3_CREATE_BUCKET", raising=False)
    assert Settings().s3_create_bucket is False
    monkeypatch.setenv("STEMSCRIBE_S3_CREATE_BUCKET", "true")
    assert Settings().s3_create_bucket is True


def test_settings_read_mounted_secret_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Kubernetes Secret volume: one file per key, values may end with a newline.
    (tmp_path / "STEMSCRIBE_S3_SECRET_ACCESS_KEY").write_text("from-file\n")
    (tmp_path / "STEMSCRIBE_API_KEYS").write_text("acme:0123456789abcdef01\n")
    (tmp_path / "STEMSCRIBE_BUCKET").write_text("file-bucket")
    monkeypatch.setenv("STEMSCRIBE_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("STEMSCRIBE_BUCKET", "env-bucket")  # the environment wins
    settings = Settings()
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "from-file"
    assert settings.tenant_keys() == {"0123456789abcdef01": "acme"}
    assert settings.bucket == "env-bucket"


def test_without_a_secrets_dir_no_files_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "STEMSCRIBE_BUCKET").write_text("file-bucket")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEMSCRIBE_SECRETS_DIR", raising=False)
    monkeypatch.delenv("STEMSCRIBE_BUCKET", raising=False)
    assert Settings().bucket == "stemscribe"


# --- the backlog ----------------------------------------------------------------------


def saved(store: JobStore, kind: str, status: JobStatus) -> JobRecord:
    job = JobRecord(job_id=new_job_id(), kind=kind, owner="a", params={}, input={})
    job.status = status
    job.heartbeat_at = time.time()
    store.save(job)
    return job


def test_the_backlog_is_the_queued_jobs_by_kind(tmp_path: Path) -> None:
    store = JobStore(LocalStorage(tmp_path, UrlSigner(b"k" * 32), 60))
    for kind, status in [
        ("separation", JobStatus.QUEUED),
        ("separation", JobStatus.QUEUED),
        ("separation", JobStatus.RUNNING),
        ("transcription", JobStatus.QUEUED),
        ("transcription", JobStatus.SUCCEEDED),
        ("lyrics", JobStatus.FAILED),
    ]:
        saved(store, kind, status)
    reported: list[dict[str, int]] = []

    async def resubmit(job_id: str) -> str:
        return "queued"

    janitor = Janitor(store, stale_after=3600, retention=None)
    maintenance = Maintenance(
        janitor, resubmit, reap_interval=1, sweep_interval=60, on_backlog=reported.append
    )
    asyncio.run(maintenance.run_once())
    assert reported == [{"separation": 2, "transcription": 1}]
