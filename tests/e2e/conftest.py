"""The e2e tier: ``serve run serve_config.offline.yaml`` in a subprocess, as a user runs it."""

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
    config = yaml.safe_load((ROOT / "serve_config.offline.yaml").read_text())
    config["http_options"]["port"] = E2E_PORT  # only the port differs from the shipped file
    with serve_run(config, work, f"http://127.0.0.1:{E2E_PORT}") as base:
        yield base, work / "data"


@contextlib.contextmanager
def serve_run(config: dict[str, Any], work: Path, base: str, verify: Any = True) -> Iterator[str]:
    """``serve run`` of ``config`` in a cluster of its own, until the block ends; ``base``."""
    config_path = work / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["STEMSCRIBE_DATA_DIR"] = str(work / "data")
    # Its own Ray temp dir (short: Ray puts unix sockets there) marks the processes of
    # the cluster `serve run` starts, so teardown can stop exactly those.
    ray_tmp = Path(tempfile.mkdtemp(prefix="sse-", dir="/tmp"))
    env["RAY_TMPDIR"] = str(ray_tmp)
    serve_bin = Path(sys.executable).with_name("serve")
    log = (work / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(serve_bin), "run", str(config_path)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
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
