"""Retrying a DeploymentHandle call whose replica died under it.

A replica can die mid-call (node lost, OOM kill, ``ray.kill``). The call then
raises one of Ray's actor errors; Serve routes a new call to a live replica (or a
replacement) once it has noticed, so a short backoff and a few attempts cover it.
Only idempotent calls belong here: a DemucsWorker forward pass is a pure function
of its inputs, so doing it twice is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

log = logging.getLogger(__name__)

T = TypeVar("T")

REPLICA_DIED = (RayActorError, ActorDiedError, ActorUnavailableError)
"""What a handle call raises when its replica died or cannot be reached."""


async def retry_on_replica_death(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    attempts: int = 5,
    first_delay: float = 0.5,
    max_delay: float = 4.0,
) -> T:
    """``await call()``, again after a backoff when its replica died; at most ``attempts``."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except REPLICA_DIED as exc:
            if attempt == attempts:
                raise
            log.warning("%s: replica died (%s); retry %d in %.1f s", what, exc, attempt, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")
