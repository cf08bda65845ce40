"""A job as clients see it: the view every job route and admission answer with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from deployments.api.services import Services
from deployments.api.urls import file_link
from pipelines.jobs import JobRecord, JobStatus


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def present(request: Request, services: Services, record: JobRecord) -> dict[str, Any]:
    """The public view of a job; download URLs are signed fresh on every read."""
    base = str(request.url_for("get_job", job_id=record.job_id))
    view: dict[str, Any] = {
        "job_id": record.job_id,
        "kind": record.kind,
        "status": record.status.value,
        "progress": round(record.progress, 4),
        "created_at": _iso(record.created_at),
        "started_at": _iso(record.started_at),
        "finished_at": _iso(record.finished_at),
        "error": record.error,
        "params": record.params,
        "timings": record.timings,
        "cached": record.cached_from is not None,
        "cached_from": record.cached_from,
        "callback": _callback(record),
        "result": None,
        "status_url": base,
        "events_url": base + "/events",
    }
    if record.status is JobStatus.SUCCEEDED:
        view["result"] = _result(request, services, record)
    return view


def _callback(record: JobRecord) -> dict[str, Any] | None:
    """The callback's delivery as far as it went: state and every attempt."""
    callback = record.callback
    if callback is None:
        return None
    attempts = [
        {"at": _iso(a.at), "status_code": a.status_code, "error": a.error}
        for a in callback.attempts
    ]
    return {"url": callback.url, "state": callback.state.value, "attempts": attempts}


def _result(request: Request, services: Services, record: JobRecord) -> dict[str, Any]:
    result: dict[str, Any] = {
        "outputs": {o.name: file_link(request, services, o) for o in record.outputs},
        "archive": file_link(request, services, record.archive) if record.archive else None,
    }
    result.update({k: v for k, v in record.info.items() if k != "seed"})
    return result
