"""Tables of jobs and models for a terminal, drawn by rich."""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

__all__ = ["jobs_table", "models_tables", "show"]

PIPE_WIDTH = 200
"""Columns when stdout is not a terminal: wide enough that no row wraps in a pipe."""


def _table(*headers: str) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=True)
    return table


def _when(iso: str | None) -> str:
    """``2024-05-01T12:03:04.5Z`` → ``2024-05-01 12:03:04``."""
    return (iso or "-").replace("T", " ").removesuffix("Z").split(".")[0]


def jobs_table(jobs: list[dict[str, Any]]) -> Table | str:
    """id, kind, status, progress, created: one job a line, newest first."""
    if not jobs:
        return "no jobs"
    table = _table("id", "kind", "status", "progress", "created")
    for j in jobs:
        progress = f"{j['progress'] * 100:.0f}%"
        table.add_row(j["job_id"], j["kind"], j["status"], progress, _when(j["created_at"]))
    return table


def models_tables(models: dict[str, Any]) -> list[Table]:
    """Separation models (stems, sample rate, state) and transcription models; ``*`` marks
    defaults."""
    separation = models["separation"]
    stems = _table("separation", "stems", "rate", "status")
    for m in separation["models"]:
        stems.add_row(
            _starred(m["name"], separation["default"]),
            ", ".join(m.get("sources", [])),
            str(m.get("samplerate", "")),
            str(m.get("status", "")),
        )
    transcription = models["transcription"]
    names = _table("transcription")
    for m in transcription["models"]:
        names.add_row(_starred(m["name"], transcription["default"]))
    return [stems, names]


def show(stream: TextIO, *renderables: Table | str) -> None:
    """Print tables (a blank line between them) to ``stream``."""
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:
        console = Console(file=stream, highlight=False, width=PIPE_WIDTH)
    for i, renderable in enumerate(renderables):
        if i:
            console.print()
        console.print(renderable)


def _starred(name: str, default: str | None) -> str:
    return f"{name} *" if name == default else name
