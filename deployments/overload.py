"""Serve's back-pressure signals, turned into the domain's `Overloaded` error.

A handle call is refused with ``BackPressureError`` when the target deployment
already queues ``max_queued_requests`` calls, and with ``DeploymentUnavailableError``
when it failed to deploy. Both must reach a client as a 503 with ``Retry-After``
and the JSON error shape, never as a hang or a trace. Serve installs its own
plain-text handler for these classes on the ingress app (after the app is built,
so it replaces any handler of ours), which is why callers convert them where the
handle call is made (`refuse_overload`) rather than relying on the app's handlers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from pipelines.errors import Overloaded

SERVE_OVERLOAD = (BackPressureError, DeploymentUnavailableError)
DEFAULT_RETRY_AFTER_S = 5


def as_overloaded(exc: BaseException) -> Overloaded:
    """The domain error for one of `SERVE_OVERLOAD`, with the delay Serve suggests."""
    suggested = getattr(exc, "retry_after_s", None)
    retry_after = max(1, math.ceil(suggested)) if suggested else DEFAULT_RETRY_AFTER_S
    return Overloaded(
        "The service is at capacity; retry in a few seconds.",
        details={"retry_after_seconds": retry_after},
    )


@contextmanager
def refuse_overload() -> Iterator[None]:
    """Re-raise Serve's back-pressure errors raised in the block as `Overloaded`."""
    try:
        yield
    except SERVE_OVERLOAD as exc:
        raise as_overloaded(exc) from exc
