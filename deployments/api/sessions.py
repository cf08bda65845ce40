"""The live sessions one Ingress replica holds, and its caps on them (``streaming.args``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import FastAPI

from deployments.api.services import Services
from pipelines.errors import StemscribeError


class SessionRegistry:
    """Live sessions open on this Ingress replica (one event loop: no locking)."""

    def __init__(
        self,
        max_sessions: int,
        on_change: Callable[[int], None] | None = None,
        max_per_tenant: int = 0,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_per_tenant = max_per_tenant
        self._owners: dict[str, str] = {}
        self._on_change = on_change or (lambda _: None)

    @property
    def open(self) -> int:
        """Sessions holding a slot now."""
        return len(self._owners)

    def acquire(self, owner: str) -> str:
        """A new session id holding a slot; ``TooManySessions`` when none is free."""
        if len(self._owners) >= self.max_sessions:
            raise TooManySessions(
                f"This server already holds {self.max_sessions} live sessions; retry later."
            )
        held = sum(1 for holder in self._owners.values() if holder == owner)
        if self.max_per_tenant and held >= self.max_per_tenant:
            raise TooManySessions(
                f"You already hold {held} live sessions on this server, the most allowed "
                "at once; close one or retry later."
            )
        session_id = uuid.uuid4().hex
        self._owners[session_id] = owner
        self._on_change(self.open)
        return session_id

    def release(self, session_id: str) -> None:
        """Free the slot (idempotent)."""
        self._owners.pop(session_id, None)
        self._on_change(self.open)


class TooManySessions(StemscribeError):
    """No live-session slot is free for this tenant on this replica."""

    code = "too_many_sessions"


def session_registry(app: FastAPI) -> SessionRegistry:
    """The replica's registry, created with the app's limits on first use."""
    registry: SessionRegistry | None = getattr(app.state, "stream_sessions", None)
    if registry is None:
        services: Services = app.state.services
        limits = services.args.streaming
        registry = SessionRegistry(
            limits.max_sessions, services.on_stream_sessions, limits.max_sessions_per_tenant
        )
        app.state.stream_sessions = registry
    return registry
