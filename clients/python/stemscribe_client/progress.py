"""Progress bars on stderr, drawn by rich: live on a terminal; elsewhere (logs, pipes)
one line per finished bar, so logs stay readable; nothing at all when quiet."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    ProgressColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

__all__ = ["Bar", "Progress"]


def _columns(unit: str) -> list[ProgressColumn]:
    columns: list[ProgressColumn] = [
        TextColumn("{task.description}"),
        BarColumn(bar_width=28),
        TaskProgressColumn(),
    ]
    if unit == "bytes":
        columns += [DownloadColumn(binary_units=True), TimeRemainingColumn()]
    return [*columns, TextColumn("{task.fields[note]}")]


class Bar:
    """One task's progress: bytes (``total`` known or not) or a 0..1 fraction."""

    def __init__(self, label: str, total: float | None, console: Console | None, unit: str):
        self.label = label
        self.total = total
        self.done = 0.0
        self._console = console
        self._closed = False
        self._view = RichProgress(*_columns(unit), console=console or Console(quiet=True))
        self._task: TaskID = self._view.add_task(label, total=total, note="")
        self._live = console is not None and console.is_terminal
        if self._live:
            self._view.start()

    def advance(self, amount: float) -> None:
        """Add ``amount`` to what is done."""
        self.update(self.done + amount)

    def update(self, done: float) -> None:
        """Set what is done (and the total, which a download learns late)."""
        self.done = done
        self._view.update(self._task, completed=done, total=self.total)

    def close(self, note: str = "") -> None:
        """Finish the bar with its final state (and ``note``, e.g. a status)."""
        if self._closed or self._console is None:
            return
        self._closed = True
        self._view.update(self._task, completed=self.done, total=self.total, note=note)
        if self._live:
            self._view.stop()
        else:
            self._console.print(self._view.make_tasks_table(self._view.tasks))

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
        return Bar(label, total, self._console(), "bytes")

    def fraction(self, label: str) -> Bar:
        """A bar of a 0..1 fraction (a job's progress)."""
        return Bar(label, 1.0, self._console(), "fraction")

    def _console(self) -> Console | None:
        if self.quiet:
            return None
        return Console(file=self._stream or sys.stderr, highlight=False)
