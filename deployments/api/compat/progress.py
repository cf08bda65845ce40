"""Socket.IO ``/progress``: ``subscribe {job_id}`` → ``progress`` events, then the end.

For each subscribed job the server follows the job record (as ``/v1/jobs/{id}/events``
does) and emits ``progress`` ``{job_id, progress: 0-100, status, message}`` whenever it
changes; a job that succeeds ends with progress 100 and status ``completed``, one that
fails or is cancelled with an ``error`` ``{job_id, code, message}``. A job id that is
unknown or another tenant's gets the same ``error`` as in ``/v1``: not found.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import socketio

from deployments.api.auth import ApiKeys
from deployments.api.compat.common import OLD_STATUS, message, percent
from deployments.api.compat.sockets import tenant
from deployments.api.services import Services
from pipelines.errors import StemscribeError
from pipelines.jobs import JobRecord, JobStatus

POLL_SECONDS = 0.5
MAX_SUBSCRIPTIONS = 16
"""Jobs one connection may follow at once."""


def progress_event(record: JobRecord) -> dict[str, Any]:
    return {
        "job_id": record.job_id,
        "progress": percent(record),
        "status": OLD_STATUS[record.status],
        "message": message(record),
    }


class ProgressNamespace(socketio.AsyncNamespace):
    """One follower task per (connection, job); all cancelled when the client leaves."""

    def __init__(self, namespace: str, services: Services, keys: ApiKeys) -> None:
        super().__init__(namespace)
        self.services = services
        self.keys = keys
        self.owners: dict[str, str] = {}
        self.followers: dict[str, dict[str, asyncio.Task[None]]] = {}

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        self.owners[sid] = tenant(self.keys, environ, auth)
        self.followers[sid] = {}

    async def on_disconnect(self, sid: str, reason: object = None) -> None:
        self.owners.pop(sid, None)
        for task in self.followers.pop(sid, {}).values():
            task.cancel()

    async def on_subscribe(self, sid: str, data: object = None) -> None:
        job_id = data.get("job_id") if isinstance(data, dict) else data
        if not isinstance(job_id, str) or not job_id:
            await self._error(sid, None, "invalid_request", 'subscribe needs {"job_id": "..."}.')
            return
        followers = self.followers.get(sid)
        if followers is None or job_id in followers:
            return
        if len(followers) >= MAX_SUBSCRIPTIONS:
            text = f"A connection follows at most {MAX_SUBSCRIPTIONS} jobs at once."
            await self._error(sid, job_id, "too_many_subscriptions", text)
            return
        followers[job_id] = asyncio.create_task(self._follow(sid, job_id, self.owners[sid]))

    async def on_unsubscribe(self, sid: str, data: object = None) -> None:
        job_id = data.get("job_id") if isinstance(data, dict) else data
        task = self.followers.get(sid, {}).pop(str(job_id), None)
        if task is not None:
            task.cancel()

    async def _follow(self, sid: str, job_id: str, owner: str) -> None:
        """Emit the job's progress until it ends (or the client leaves)."""
        last: dict[str, Any] | None = None
        try:
            while True:
                record = await asyncio.to_thread(self.services.jobs.get, job_id, owner)
                event = progress_event(record)
                if event != last:
                    await self.emit("progress", event, to=sid)
                    last = event
                if record.status.finished:
                    if record.status is not JobStatus.SUCCEEDED:
                        code = str((record.error or {}).get("code") or record.status.value)
                        await self._error(sid, job_id, code, message(record))
                    return
                await asyncio.sleep(POLL_SECONDS)
        except StemscribeError as exc:  # not found (or another tenant's); storage down
            await self._error(sid, job_id, exc.code, exc.message)
        finally:
            with contextlib.suppress(KeyError):
                del self.followers[sid][job_id]

    async def _error(self, sid: str, job_id: str | None, code: str, text: str) -> None:
        await self.emit("error", {"job_id": job_id, "code": code, "message": text}, to=sid)
