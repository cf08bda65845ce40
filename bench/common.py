"""Shared pieces of the benchmark scripts: machine description and the results file."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\nWritten by the scripts in `bench/` (`make bench`); "
    "each section is replaced by its script.\n"
)


def machine() -> str:
    """One line: CPU model, cores, memory, GPU if any."""
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        cpu = match.group(1).strip() if match else cpu
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        match = re.search(r"MemTotal:\s*(\d+)", meminfo.read_text())
        memory = f", {int(match.group(1)) / 1024 / 1024:.0f} GiB RAM" if match else ""
    return f"{cpu}, {os.cpu_count()} cores{memory}{_gpu()}"


def _gpu() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ", no GPU"
    return f", GPU: {out.stdout.strip()}"


def write_section(name: str, body: str, results: Path = RESULTS) -> None:
    """Replace (or append) the ``name`` section of ``results`` (docs/BENCHMARKS.md)."""
    text = results.read_text() if results.exists() else HEADER
    start = f"<!-- {name}:start -->"
    end = f"<!-- {name}:end -->"
    section = f"{start}\n{body.strip()}\n{end}"
    if start in text:
        text = re.sub(
            re.escape(start) + r".*?" + re.escape(end), lambda _: section, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    results.parent.mkdir(exist_ok=True)
    results.write_text(text)


def publish(name: str, body: str) -> None:
    """Show a benchmark's section and write it into docs/BENCHMARKS.md."""
    print(body)
    write_section(name, body)


def bench_port(default: int) -> int:
    """The port a benchmark's app listens on: ``STEMSCRIBE_BENCH_PORT`` or ``default``."""
    return int(os.environ.get("STEMSCRIBE_BENCH_PORT", str(default)))


def in_replica_env(script: str, *args: str) -> str:
    """The last line ``python script args`` prints, run in a fresh process with the
    replicas' environment (``config.app_args.MODEL_ENV``, read when a process starts):
    the library side of a comparison with the setting the service runs with."""
    from config.app_args import MODEL_ENV

    child = subprocess.run(
        [sys.executable, script, *args],
        env=os.environ | MODEL_ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    return child.stdout.strip().splitlines()[-1]
