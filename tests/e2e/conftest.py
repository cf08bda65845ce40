"""The e2e tier: ``serve run`` of the shipped configs in a subprocess, as a user runs it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.serving import wait_ready

ROOT = Path(__file__).resolve().parents[2]
E2E_PORT = int(os.environ.get("STEMSCRIBE_TEST_E2E_PORT", "28100"))


@pytest.fixture(scope="session")
def offline_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(base URL, data dir) of the offline config served by ``serve run``."""
    work = tmp_path_factory.mktemp("e2e")
    with serve_run(shipped_config("serve_config.offline.yaml", E2E_PORT), work, E2E_PORT) as base:
        yield base, work / "data"


def shipped_config(name: str, port: int) -> dict[str, Any]:
    """A shipped config with only its HTTP port changed."""
    config: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    config["http_options"]["port"] = port
    return config


@contextlib.contextmanager
def serve_run(
    config: dict[str, Any],
    work: Path,
    port: int,
    *,
    scheme: str = "http",
    verify: Any = True,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """``serve run`` of ``config`` in a cluster of its own, until the block ends; its base
    URL once ``/readyz`` answers ready. The cluster it starts is stopped on exit."""
    config_path = work / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    run_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run_env["STEMSCRIBE_DATA_DIR"] = str(work / "data")
    run_env.update(env or {})
    # Its own Ray temp dir (short: Ray puts unix sockets there) marks the processes of
    # the cluster `serve run` starts, so teardown can stop exactly those.
    ray_tmp = Path(tempfile.mkdtemp(prefix="sse-", dir="/tmp"))
    run_env["RAY_TMPDIR"] = str(ray_tmp)
    serve_bin = Path(sys.executable).with_name("serve")
    log = (work / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(serve_bin), "run", str(config_path)],
        cwd=ROOT,
        env=run_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_ready(base, timeout=240, process=process, verify=verify)
        yield base
    except Exception:
        print((work / "serve.log").read_text()[-5000:])
        raise
    finally:
        process.send_signal(signal.SIGINT)  # serve run shuts its cluster down on Ctrl-C
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stop_processes_using(ray_tmp)  # Ray's daemons run in sessions of their own
        shutil.rmtree(ray_tmp, ignore_errors=True)
        log.close()


def stop_processes_using(folder: Path) -> None:
    """Kill every process whose command line names ``folder`` (a cluster's temp dir)."""
    marker = str(folder).encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError, ValueError):
            if marker in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
