"""One command's connection to the server, and the file-job round trip every job command
shares: upload, submit, follow the events, download the outputs."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from stemscribe_client.api import Client, ClientError, Job
from stemscribe_client.progress import Progress
from stemscribe_client.transfer import download, storage_client, upload

__all__ = ["Session", "local_name", "stem_outputs", "succeeded"]


@dataclass
class Session:
    """What a command works with: the API, storage, progress bars and the output mode."""

    client: Client
    progress: Progress
    as_json: bool = False
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    storage: httpx.Client = field(default_factory=storage_client)

    def close(self) -> None:
        self.client.close()
        self.storage.close()

    def run_job(self, path: Path, endpoint: str, params: dict[str, Any]) -> Job:
        """Upload ``path``, start a job on ``/v1/{endpoint}``, follow it until it succeeds."""
        if not path.is_file():
            raise ClientError(f"no such file: {path}")
        upload_id = upload(self.client, self.storage, path, self.progress)
        job = self.client.submit(endpoint, upload_id, _set(params))
        with self.progress.fraction(f"{job['kind']} {job['job_id'][:12]}") as bar:
            done = self.client.follow(job["job_id"], bar.update)
            bar.close(done["status"])
        return succeeded(done)

    def save(self, job: Job, targets: dict[str, Path], resume: bool = False) -> dict[str, Path]:
        """Download the outputs named in ``targets`` to their paths."""
        outputs = job["result"]["outputs"]
        missing = sorted(set(targets) - set(outputs))
        if missing:
            raise ClientError(f"job {job['job_id']} has no {', '.join(missing)} output")
        saved = {}
        for name, dest in targets.items():
            saved[name] = download(self.storage, outputs[name], dest, self.progress, resume).path
        return saved

    def report(self, job: Job, saved: dict[str, Path]) -> None:
        """The finished job as JSON (with local paths under ``files``), or the paths."""
        if self.as_json:
            files = {name: str(path) for name, path in saved.items()}
            self.print_json(job | {"files": files})
        else:
            for path in saved.values():
                print(path, file=self.stdout)

    def print_json(self, value: Any) -> None:
        print(json.dumps(value, indent=2), file=self.stdout)


def succeeded(job: Job) -> Job:
    """``job`` if it succeeded; else `ClientError` with the job's own error message."""
    if job["status"] == "succeeded":
        return job
    error = job.get("error") or {}
    reason = error.get("message") or job["status"]
    raise ClientError(f"job {job['job_id']} {job['status']}: {reason}")


def local_name(name: str, link: dict[str, Any]) -> str:
    """File name for an output: the server's file name, or the output name with its
    extension when they differ (``instrumental`` stored as ``no_vocals.wav``)."""
    filename = Path(str(link.get("filename") or name))
    if name in (filename.stem, filename.suffix.lstrip(".")):
        return filename.name
    return name + filename.suffix


def stem_outputs(job: Job, directory: Path) -> dict[str, Path]:
    """Every output of ``job`` (the ZIP archive is listed apart), under ``directory``."""
    outputs = job["result"]["outputs"]
    return {name: directory / local_name(name, link) for name, link in outputs.items()}


def _set(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}
