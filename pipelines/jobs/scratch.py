"""Local scratch disk for running jobs: one folder per job, always given back.

A job's folder holds its input, its decoded track and its stems while it runs; it
is removed when the job ends, however it ends. A coordinator that dies cannot remove
its folders, so each folder carries a lock file the running process holds with
``flock`` (the kernel drops the lock when the process dies): :meth:`ScratchSpace.sweep`
removes every folder whose lock it can take. Scratch disk is what bounds a job's
length, so the space a job needs is checked before it is accepted and again when it
starts (:class:`ScratchCost`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import InsufficientScratch

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
UNLOCKED_GRACE_SECONDS = 60.0
"""A folder younger than this may not hold its lock yet: the sweep leaves it."""
GIB = 1024**3
FLOAT_BYTES = 4


@dataclass(frozen=True)
class ScratchCost:
    """Scratch bytes a job takes: ``per_second`` of audio plus its input file."""

    per_second: float

    def bytes_for(self, seconds: float, input_bytes: int) -> int:
        return int(input_bytes + self.per_second * seconds)


def separation_cost(
    sample_rate: int,
    channels: int,
    stems: int,
    format: str,
    bit_depth: int,
    mp3_bitrate: int,
    *,
    keep_float: int = 0,
) -> ScratchCost:
    """What a separation holds at its peak: the decoded track and the float stems while
    windows run, or the float stems and encoded files (then encoded files and the ZIP)
    while writing. ``keep_float``: float stems kept past encoding (lyrics keeps one)."""
    pcm = sample_rate * channels * FLOAT_BYTES
    if format == "mp3":
        encoded = mp3_bitrate * 1000 / 8
    else:
        encoded = sample_rate * channels * (FLOAT_BYTES if bit_depth == 32 else bit_depth // 8)
    windows = pcm * (1 + stems)
    writing = max(pcm * stems + encoded * stems, pcm * keep_float + 2 * encoded * stems)
    return ScratchCost(max(windows, writing))


class ScratchSpace:
    """Job folders under ``root``, keeping ``reserve_bytes`` of the disk free."""

    def __init__(self, root: Path, reserve_bytes: int = 0) -> None:
        self.root = Path(root)
        self.reserve_bytes = reserve_bytes
        self._claims: dict[str, int] = {}

    def free_bytes(self) -> int:
        """Disk space jobs may still take: free space less the reserve and what jobs
        started here have claimed."""
        self.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.root).free - self.reserve_bytes
        return max(0, free - sum(self._claims.values()))

    def check(self, needed: int) -> None:
        """Raise :class:`InsufficientScratch` (507) unless ``needed`` bytes fit."""
        free = self.free_bytes()
        if needed > free:
            raise InsufficientScratch(
                f"This job needs {needed / GIB:.2f} GiB of scratch disk; "
                f"{free / GIB:.2f} GiB is free. Try a shorter file or later.",
                details={"needed_bytes": needed, "free_bytes": free},
            )

    @contextlib.contextmanager
    def job(self, job_id: str) -> Iterator[JobScratch]:
        """A fresh folder for ``job_id``, removed when the block ends."""
        folder = self.root / job_id
        shutil.rmtree(folder, ignore_errors=True)  # left by an earlier attempt
        folder.mkdir(parents=True)
        lock = (folder / LOCK_NAME).open("wb")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield JobScratch(self, job_id, folder)
        finally:
            self._claims.pop(job_id, None)
            shutil.rmtree(folder, ignore_errors=True)
            lock.close()

    def sweep(self, now: float | None = None) -> int:
        """Remove the folders of jobs whose process is gone; return how many."""
        if not self.root.is_dir():
            return 0
        now = time.time() if now is None else now
        removed = 0
        for folder in self.root.iterdir():
            if folder.is_dir() and _abandoned(folder, now):
                shutil.rmtree(folder, ignore_errors=True)
                log.warning("removed scratch of an interrupted job: %s", folder.name)
                removed += 1
        return removed

    def claim(self, job_id: str, needed: int) -> None:
        """Check that ``needed`` bytes fit, then count them as taken until the job ends."""
        self._claims.pop(job_id, None)
        self.check(needed)
        self._claims[job_id] = needed


@dataclass(frozen=True)
class JobScratch:
    """One running job's folder."""

    space: ScratchSpace
    job_id: str
    folder: Path

    def claim(self, needed: int) -> None:
        self.space.claim(self.job_id, needed)


def _abandoned(folder: Path, now: float) -> bool:
    try:
        if now - folder.stat().st_mtime < UNLOCKED_GRACE_SECONDS:
            return False  # just made: its job may not hold the lock yet
        lock = (folder / LOCK_NAME).open("rb")
    except FileNotFoundError:
        return folder.is_dir()  # an old folder that never got its lock
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its job is running
        return True
