"""Plain-text tables of jobs and models for a terminal."""

from __future__ import annotations

from typing import Any

__all__ = ["jobs_table", "models_table", "table"]


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns, two spaces apart, with a header line."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def _when(iso: str | None) -> str:
    """``2024-05-01T12:03:04.5Z`` → ``2024-05-01 12:03:04``."""
    return (iso or "-").replace("T", " ").removesuffix("Z").split(".")[0]


def jobs_table(jobs: list[dict[str, Any]]) -> str:
    """id, kind, status, progress, created: one job a line, newest first."""
    rows = [
        [j["job_id"], j["kind"], j["status"], f"{j['progress'] * 100:.0f}%", _when(j["created_at"])]
        for j in jobs
    ]
    return table(["id", "kind", "status", "progress", "created"], rows) if rows else "no jobs"


def models_table(models: dict[str, Any]) -> str:
    """Separation models (stems, sample rate) and transcription models; ``*`` marks defaults."""
    separation = models["separation"]
    rows = [
        [
            _starred(m["name"], separation["default"]),
            ", ".join(m.get("sources", [])),
            str(m.get("samplerate", "")),
        ]
        for m in separation["models"]
    ]
    transcription = models["transcription"]
    names = [[_starred(m["name"], transcription["default"])] for m in transcription["models"]]
    return "\n\n".join(
        [table(["separation", "stems", "rate"], rows), table(["transcription"], names)]
    )


def _starred(name: str, default: str | None) -> str:
    return f"{name} *" if name == default else name
