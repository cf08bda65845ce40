"""Peak memory of long separations: the served app vs ``python -m demucs.separate``.

Sends a 10- and a 60-minute stereo track through the whole served app (upload, job,
stems and ZIP in storage) and runs the demucs command line on the same files with the
same model and options, sampling resident memory (RSS) with psutil four times a second:
the growth over idle of the whole serve process tree (Ray's own processes included),
of its largest process, and the CLI's peak.

    python -m bench.memory                       # demucs_unittest, 10 and 60 min
    python -m bench.memory --model tiny --minutes 10 60

``--model tiny`` uses a small random HTDemucs at 44.1 kHz (both sides load it from the
same local repo) for machines where ``demucs_unittest``'s 40 s windows are too slow:
memory is set by track length, not by the model, on both sides.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psutil

from bench.common import machine, publish
from harness.audio import long_song
from harness.serving import upload_file, wait_ready

GIB = 1024**3


class Usage(NamedTuple):
    """A process's resident memory: all of it, and what no other process maps (RSS less
    its file-backed and shared pages, such as the Ray object store's)."""

    rss: int
    private: int


@dataclass
class Peak:
    """Peak RSS growth of a process tree over its idle baseline."""

    baseline: dict[int, Usage] = field(default_factory=dict)
    total: int = 0
    largest: int = 0
    largest_name: str = ""
    """The process whose growth was the largest (its Ray process title)."""
    each: dict[int, int] = field(default_factory=dict)
    """Every process's largest growth, by pid."""
    private: dict[int, int] = field(default_factory=dict)
    """Every process's largest growth of private memory, by pid."""
    names: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    @staticmethod
    def tree(root: psutil.Process) -> dict[int, Usage]:
        """The memory of every process in the tree, by pid."""
        usage: dict[int, Usage] = {}
        for proc in [root, *root.children(recursive=True)]:
            try:
                info = proc.memory_info()
            except psutil.Error:
                continue
            usage[proc.pid] = Usage(info.rss, info.rss - info.shared)
        return usage

    @staticmethod
    def rss(usage: dict[int, Usage]) -> int:
        return sum(u.rss for u in usage.values())

    @staticmethod
    def name(pid: int) -> str:
        try:
            return " ".join(psutil.Process(pid).cmdline())[:80]
        except psutil.Error:
            return f"pid {pid}"

    def watch(self, root: psutil.Process) -> threading.Thread:
        self.baseline = self.tree(root)

        def sample() -> None:
            base_total = self.rss(self.baseline)
            while not self._stop.wait(0.25):
                now = self.tree(root)
                self.total = max(self.total, self.rss(now) - base_total)
                for pid, usage in now.items():
                    base = self.baseline.get(pid, Usage(0, 0))
                    growth = usage.rss - base.rss
                    self.each[pid] = max(self.each.get(pid, 0), growth)
                    own = usage.private - base.private
                    self.private[pid] = max(self.private.get(pid, 0), own)
                    if pid not in self.names:
                        self.names[pid] = self.name(pid).split(".")[0].strip()
                    if growth > self.largest:
                        self.largest = growth
                        self.largest_name = self.name(pid)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        return thread

    def stop(self, thread: threading.Thread) -> None:
        self._stop.set()
        thread.join()

    def most(self, n: int = 3) -> list[tuple[str, float, float]]:
        """The ``n`` processes that grew the most: (name, GiB, private GiB)."""
        top = sorted(self.each.items(), key=lambda item: -item[1])[:n]
        return [(self.names[pid], grew / GIB, self.private[pid] / GIB) for pid, grew in top]


def model_options(model: str, repo: Path) -> tuple[str, list[str]]:
    """The model name and the CLI's repo flags."""
    if model != "tiny":
        return model, []
    from harness.models import SHALLOW_HTDEMUCS, save_random_htdemucs

    save_random_htdemucs(repo, "tiny_htdemucs_44k", seed=0, **SHALLOW_HTDEMUCS)
    return "tiny_htdemucs_44k", ["--repo", str(repo)]


def serve_app(work: Path, model: str, repo: str | None, port: int) -> None:
    """Run the app until killed (the child process whose tree is measured)."""
    import ray
    from ray import serve

    from config import AppArgs, Settings
    from deployments.app import compose

    args = AppArgs.model_validate(
        {
            "ingress": {"num_cpus": 0.1},
            "coordinator": {"num_cpus": 0.5, "threads": 1},
            "demucs_worker": {"num_cpus": 1, "threads": 2},
            "separation": {"models": [model], "default_model": model, "model_repo": repo},
            "limits": {"max_upload_mb": 4096, "max_audio_seconds": 14400},
        }
    )
    settings = Settings(
        storage_backend="local", data_dir=work / "data", scratch_dir=work / "scratch"
    )
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(compose(args, settings), name="bench", route_prefix="/")
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()


def separate(base: str, upload_id: str, shifts: int) -> dict[str, Any]:
    body = {"input": {"upload_id": upload_id}, "shifts": shifts, "overlap": 0.25}
    reply = httpx.post(f"{base}/v1/separations", json=body, timeout=120)
    reply.raise_for_status()
    url = reply.json()["status_url"]
    while True:
        job: dict[str, Any] = httpx.get(url, timeout=60).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"job {job['status']}: {job['error']}")
            return job
        time.sleep(1)


def cli(model: str, flags: list[str], path: Path, out: Path, shifts: int) -> tuple[float, float]:
    """Peak RSS (GiB) and seconds of ``python -m demucs.separate`` on ``path``."""
    command = [sys.executable, "-m", "demucs.separate", "-n", model, *flags]
    command += ["--shifts", str(shifts), "--overlap", "0.25", "-o", str(out), str(path)]
    started = time.monotonic()
    proc = psutil.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, Peak.rss(Peak.tree(proc)))
        time.sleep(0.25)
    if proc.returncode != 0:
        raise RuntimeError(f"demucs.separate exited {proc.returncode}")
    return peak / GIB, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="demucs_unittest")
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    parser.add_argument(
        "--cli-minutes",
        type=float,
        nargs="*",
        default=None,
        help="lengths to run the CLI on (default: all)",
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("STEMSCRIBE_BENCH_PORT", 28300))
    )
    parser.add_argument("--shifts", type=int, default=1, help="Demucs shifts, both sides")
    parser.add_argument(
        "--cli-parallel", action="store_true", help="run the CLI while the service works"
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        return serve_app(opts.serve, opts.model, opts.repo, opts.port)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        run(opts, Path(tmp))


def run(opts: argparse.Namespace, work: Path) -> None:
    model, flags = model_options(opts.model, work / "models")
    repo = ["--repo", str(work / "models")] if flags else []
    tracks = {m: long_song(m, work / f"track-{m:g}min.wav") for m in opts.minutes}
    rows: list[dict[str, Any]] = []
    cli_minutes = opts.minutes if opts.cli_minutes is None else opts.cli_minutes
    cli_rows: dict[float, dict[str, float]] = {}

    def run_cli() -> None:
        for minutes in cli_minutes:
            peak, seconds = cli(model, flags, tracks[minutes], work / "cli", opts.shifts)
            cli_rows[minutes] = {"cli": peak, "cli_seconds": seconds}
            print(json.dumps({"minutes": minutes, **cli_rows[minutes]}), flush=True)

    # Separate process trees, so running both at once changes neither's memory, only
    # their times (which this benchmark does not compare). Otherwise the CLI goes first,
    # while the app is not yet running: its long-track peak needs most of a small machine.
    cli_thread = threading.Thread(target=run_cli) if opts.cli_parallel else None
    if cli_thread is not None:
        cli_thread.start()
    else:
        run_cli()
    for minutes, path in tracks.items():
        row = measure(opts, work, model, repo, minutes, path)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if cli_thread is not None:
        cli_thread.join()
    for row in rows:
        row.update(cli_rows.get(row["minutes"], {}))
    report(opts, model, rows)


def measure(
    opts: argparse.Namespace, work: Path, model: str, repo: list[str], minutes: float, path: Path
) -> dict[str, Any]:
    """One track through a fresh app: start it, run the warm-up job, then the track.

    A fresh app per track, so no track's baseline holds what an earlier one left
    allocated; the warm-up job (same shifts, a few windows) puts model loading and a
    first job's one-time allocations into the baseline of every track alike.
    """
    base = f"http://127.0.0.1:{opts.port}"
    command = [sys.executable, "-m", "bench.memory", "--serve", str(work), "--model", model]
    server = psutil.Popen([*command, "--port", str(opts.port), *repo], stdout=subprocess.DEVNULL)
    try:
        wait_ready(base, timeout=900, process=server)
        separate(base, upload_file(base, long_song(1.0, work / "warm.wav")), opts.shifts)
        upload_id = upload_file(base, path)
        time.sleep(5)  # let the upload's buffers settle before the baseline
        peak = Peak()
        thread = peak.watch(server)
        started = time.monotonic()
        job = separate(base, upload_id, opts.shifts)
        seconds = time.monotonic() - started
        peak.stop(thread)
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            server.terminate()
            server.wait(120)
    return {
        "minutes": minutes,
        "tree": peak.total / GIB,
        "largest": peak.largest / GIB,
        "largest_process": peak.largest_name,
        "most": peak.most(),
        "seconds": seconds,
        "timings": job.get("timings", {}),
    }


def verdict(rows: list[dict[str, Any]]) -> str:
    """The figures against the targets: longest track ≤ 2 GiB for the service, ≤ 1 GiB
    for any process, and shortest and longest within 20 % of each other."""
    short, long = min(rows, key=lambda r: r["minutes"]), max(rows, key=lambda r: r["minutes"])

    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    def close(key: str) -> str:
        a, b = short[key], long[key]
        apart = abs(a - b) / max(a, b)
        return f"{a:.2f} vs {b:.2f} GiB, {apart:.0%} apart: {met(apart <= 0.2)}"

    name = f"{long['minutes']:g}-minute"
    return "\n".join(
        [
            f"- {name} track, service tree growth {long['tree']:.2f} GiB "
            f"(target ≤ 2 GiB): {met(long['tree'] <= 2)}",
            f"- {name} track, largest process growth {long['largest']:.2f} GiB "
            f"(target ≤ 1 GiB): {met(long['largest'] <= 1)}",
            f"- {short['minutes']:g} vs {long['minutes']:g} minutes within 20 %: tree "
            f"{close('tree')}; largest process {close('largest')}",
        ]
    )


def report(opts: argparse.Namespace, model: str, rows: list[dict[str, Any]]) -> None:
    def cell(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.2f} GiB" if key in row else "not run"

    def seconds(row: dict[str, Any], key: str) -> str:
        return f"{row[key]:.0f} s" if key in row else "–"

    table = "\n".join(
        f"| {r['minutes']:g} min | {cell(r, 'tree')} | {cell(r, 'largest')} | {cell(r, 'cli')} "
        f"| {r['seconds']:.0f} s | {seconds(r, 'cli_seconds')} |"
        for r in rows
    )
    stages = "\n".join(
        f"- {r['minutes']:g} min: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["timings"].items())
        for r in rows
    )
    largest = "\n".join(
        f"- {r['minutes']:g} min: "
        + ", ".join(f"`{name}` {gib:.2f} GiB ({own:.2f} private)" for name, gib, own in r["most"])
        for r in rows
    )
    command = "python -m bench.memory " + " ".join(sys.argv[1:])
    together = (
        "The CLI ran alongside the service (`--cli-parallel`): separate process trees, so "
        "memory is unaffected, but the times are not a speed comparison.\n"
        if opts.cli_parallel
        else ""
    )
    body = f"""## Memory: long separations, service vs `demucs.separate`

Stereo 44.1 kHz WAV tracks, model `{model}`, shifts={opts.shifts}, overlap=0.25 on both sides.
Service: the whole app (local storage), input uploaded first, then one job; RSS growth
over idle sampled every 0.25 s across every process of the serve tree (Ray's own
included; shared memory is counted in each process that maps it, so the sum is an
upper bound). CLI: peak RSS of `python -m demucs.separate` and its children.
{together}
| track | service tree growth | largest process growth | CLI peak | service time | CLI time |
|---|---|---|---|---|---|
{table}

The processes that grew the most (each one's own peak growth; in brackets, the peak growth
of its private memory, RSS less the file-backed and shared pages it maps, such as the Ray
object store's):

{largest}

Per-stage seconds of each job (summed over batches; `queue_wait` and `forward` overlap
across batches in flight):

{stages}

Each track runs in a fresh app, after the same 1-minute warm-up job; its growth is over
the idle level just before its job (after the warm-up), so model loading and a first job's
one-time allocations are in every baseline alike and no track inherits another's.

{verdict(rows)}

Machine: {machine()}. Command: `{command}`.
"""
    publish("memory", body)


if __name__ == "__main__":
    main()
