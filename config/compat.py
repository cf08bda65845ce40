"""``CompatArgs``: the routes and Socket.IO namespaces of the servers stemscribe replaces."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Transport = Literal["polling", "websocket"]
_BOTH: list[Transport] = ["polling", "websocket"]


class CompatArgs(BaseModel):
    """The compatibility layer (docs/MIGRATING.md): old clients' calls onto the same jobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="Serve the earlier servers' REST routes (/health, /api/..., /upload, "
        "/process/..., ...) and their Socket.IO namespaces (/progress, /transcribe) at "
        "/socket.io/. They sit outside /v1 and the web page, and follow the same API keys, "
        "limits and CORS rules. false: none of them exists (404).",
    )
    socketio_transports: list[Transport] = Field(
        default_factory=lambda: _BOTH.copy(),
        min_length=1,
        description="Engine.IO transports accepted. HTTP long-polling keeps a session in "
        "one ingress replica's memory, and the Serve proxy does not route a client back to "
        "the same replica: with more than one ingress replica set [websocket] (clients "
        "then connect with transports: ['websocket']).",
    )
