"""The earlier servers' APIs, as thin adapters onto stemscribe's jobs (docs/MIGRATING.md).

- the separation server: ``/health``, ``/api/info``, ``/api/upload``,
  ``/api/status/{job_id}``, ``/api/download/{job_id}``, ``/api/jobs``, and the
  Socket.IO namespace ``/progress``;
- the multi-model backend: ``/health``, ``/models``, ``/upload``,
  ``/process/{model}/{file_id}``, ``/separate/{file_id}``, ``/status/{file_id}``,
  ``/download/{file_id}/{track}``, ``/files/{file_id}``, ``/cleanup/{file_id}``, and
  the Socket.IO namespace ``/transcribe``.

Jobs are created through the ``/v1`` admission path (`Admission`), so tenants, the
active-job cap, upload limits and the Transcriber are the same. ``compat.enabled:
false`` in the app args leaves all of it out. The routes stay out of ``/openapi.json``:
that document is stemscribe's own API; docs/MIGRATING.md lists these.
"""

from __future__ import annotations

from fastapi import FastAPI


def include_compat_routes(app: FastAPI) -> None:
    """The REST routes of both servers (the Socket.IO side: `sockets.mount_socketio`)."""
    from deployments.api.compat import health, multimodel, separation_server

    for module in (health, separation_server, multimodel):
        app.include_router(module.router)
