"""The Ingress side of job hand-over: DeploymentHandle calls, followed to the end.

A call whose replica died is retried (the job record, not the call, is the truth:
the coordinator re-reads it and resumes or skips).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.handle import DeploymentHandle

from deployments.clients import domain_cause
from deployments.overload import refuse_overload
from pipelines.model_catalog import raise_unless_ready

log = logging.getLogger(__name__)

RETRIES = 3
RETRYABLE = (RayActorError, ActorDiedError, ActorUnavailableError)


class HandleLauncher:
    """Submits jobs to the JobCoordinator and caches its model catalogue."""

    def __init__(self, coordinator: DeploymentHandle) -> None:
        self._coordinator = coordinator
        self._following: set[asyncio.Task[None]] = set()
        self._models: dict[str, dict[str, Any]] | None = None

    async def submit(self, kind: str, job_id: str) -> None:
        task = asyncio.create_task(self._follow(kind, job_id))
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def _follow(self, kind: str, job_id: str) -> None:
        handle = self._coordinator
        for attempt in range(1, RETRIES + 1):
            try:
                status = await handle.run.remote(job_id)
                log.info("job %s finished: %s", job_id, status)
                return
            except RETRYABLE:
                log.warning("job %s: coordinator died (attempt %d), retrying", job_id, attempt)
                await asyncio.sleep(attempt)
            except Exception:
                log.exception("job %s: coordinator call failed", job_id)
                return

    async def separation_models(self, wait_for: str | None = None) -> dict[str, dict[str, Any]]:
        if self._models is not None:  # every model loaded
            return self._models
        with refuse_overload():
            try:
                models: dict[str, dict[str, Any]] = await self._coordinator.models.remote(wait_for)
            except RayTaskError as exc:
                raise domain_cause(exc) from exc
        # Kept once every model is loaded; until then each call asks for the states.
        if all(info.get("loaded") for info in models.values()):
            self._models = models
        if wait_for in models:
            raise_unless_ready(models, wait_for)
        return models
