"""Serve plumbing of job recovery: who this replica is, how a job is handed out again,
and the background maintenance every JobCoordinator replica runs."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from ray import serve
from ray.serve.exceptions import RayServeException

from config import JobsArgs
from deployments.metrics import BacklogGauge
from pipelines.jobs import JobStore
from pipelines.jobs.idempotency import IdempotencyKeys
from pipelines.jobs.janitor import Janitor
from pipelines.jobs.maintenance import Maintenance


def replica_name() -> str:
    """This replica's full id (also its actor name in the ``serve`` namespace).

    Outside a replica (tests that build a deployment class directly): a unique local name.
    """
    try:
        return str(serve.get_replica_context().replica_id.to_full_id_str())
    except RayServeException:
        return f"local-{os.getpid()}-{secrets.token_hex(4)}"


class SelfCaller:
    """Calls ``run`` on this replica's own deployment (any replica), through Serve."""

    def __init__(self) -> None:
        self._handle: Any = None

    async def run(self, job_id: str) -> str:
        if self._handle is None:
            context = serve.get_replica_context()
            self._handle = serve.get_deployment_handle(context.deployment, context.app_name)
        status: str = await self._handle.run.remote(job_id)
        return status


def job_maintenance(
    jobs: JobStore, args: JobsArgs, also_sweep: Sequence[Callable[[float], object]] = ()
) -> Maintenance:
    """The reaper (stale jobs back through Serve, and the backlog gauge from the same
    pass) and the sweeper (retention, expired idempotency keys, and ``also_sweep``) over
    ``jobs``; call ``start()`` on an event loop."""
    janitor = Janitor(jobs, stale_after=args.stale_after_seconds, retention=args.retention_seconds)
    return Maintenance(
        janitor,
        SelfCaller().run,
        reap_interval=args.reaper_interval_seconds,
        sweep_interval=args.sweep_interval_seconds,
        also_sweep=[IdempotencyKeys(jobs.storage).expire, *also_sweep],
        on_backlog=BacklogGauge(),
    )
