"""Progress bars on stderr: live ``\\r`` bars on a terminal, one line per finished bar
otherwise (so logs stay readable), nothing at all when quiet."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Bar", "Progress"]

WIDTH = 28
REFRESH_SECONDS = 0.1
CLEAR_LINE = "\r\033[K"


def human_bytes(n: float) -> str:
    """``1536`` → ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Bar:
    """One task's progress: bytes (``total`` known or not) or a 0..1 fraction."""

    def __init__(self, label: str, total: float | None, stream: TextIO | None, unit: str) -> None:
        self.label = label
        self.total = total
        self.done = 0.0
        self.unit = unit
        self._stream = stream
        self._live = stream is not None and stream.isatty()
        self._shown_at = 0.0
        self._closed = False

    def advance(self, amount: float) -> None:
        """Add ``amount`` to what is done."""
        self.update(self.done + amount)

    def update(self, done: float) -> None:
        """Set what is done; a live bar redraws at most every ``REFRESH_SECONDS``."""
        self.done = done
        now = time.monotonic()
        if self._live and now - self._shown_at >= REFRESH_SECONDS:
            self._shown_at = now
            self._write(CLEAR_LINE + self.render())

    def close(self, note: str = "") -> None:
        """Finish the bar with its final state (and ``note``, e.g. a status)."""
        if self._closed or self._stream is None:
            return
        self._closed = True
        line = self.render() + (f" {note}" if note else "")
        self._write((CLEAR_LINE + line if self._live else line) + "\n")

    def render(self) -> str:
        """``label [#####.....]  42% 1.2 MiB / 2.9 MiB``."""
        fraction = min(1.0, self.done / self.total) if self.total else None
        filled = round(WIDTH * fraction) if fraction is not None else 0
        bar = "#" * filled + "." * (WIDTH - filled)
        percent = f"{fraction * 100:4.0f}%" if fraction is not None else "    "
        return f"{self.label:<24.24} [{bar}] {percent} {self._amount()}".rstrip()

    def _amount(self) -> str:
        if self.unit != "bytes":
            return ""
        if self.total is None:
            return human_bytes(self.done)
        return f"{human_bytes(self.done)} / {human_bytes(self.total)}"

    def _write(self, text: str) -> None:
        assert self._stream is not None
        self._stream.write(text)
        self._stream.flush()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close("" if exc[0] is None else "interrupted")


class Progress:
    """Makes bars; every bar is silent when ``quiet``."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self._stream = stream

    def bytes(self, label: str, total: int | None) -> Bar:
        """A bar counting bytes of a transfer."""
        return Bar(label, total, self._target(), "bytes")

    def fraction(self, label: str) -> Bar:
        """A bar of a 0..1 fraction (a job's progress)."""
        return Bar(label, 1.0, self._target(), "fraction")

    def _target(self) -> TextIO | None:
        return None if self.quiet else (self._stream or sys.stderr)
