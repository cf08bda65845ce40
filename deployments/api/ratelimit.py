"""Per-tenant request rate: a token bucket per tenant, on each ingress replica.

Buckets live in the replica's memory, so with N ingress replicas a tenant's
sustained ceiling is about N times the configured rate (the proxies spread
requests over replicas). That is the intended trade: no shared store on the
request path, and the limit still stops a runaway client long before it can
starve others.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from deployments.api.errors import RateLimited


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; a request takes one."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """The buckets of one replica, by tenant (one event loop: no locking)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, tenant: str) -> None:
        """Take one request from ``tenant``'s bucket, or raise `RateLimited` (429)."""
        now = self._clock()
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = TokenBucket(self.per_minute / 60, self.per_minute, now)
        wait = bucket.take(now)
        if wait > 0:
            raise RateLimited(
                f"Too many requests: the limit is {self.per_minute} per minute.",
                details={
                    "limit_per_minute": self.per_minute,
                    "retry_after_seconds": max(1, math.ceil(wait)),
                },
            )
