"""Liveness, readiness and the model catalogue."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from deployments.api.errors import error_response
from deployments.api.services import Services, get_services
from pipelines.errors import StemscribeError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(services: Services = Depends(get_services)) -> dict[str, Any] | JSONResponse:
    """Storage is reachable and the model deployments answer."""
    try:
        await asyncio.to_thread(services.storage.ping)
        await asyncio.wait_for(services.launcher.separation_models(), timeout=60)
    except StemscribeError as exc:
        return error_response(503, "not_ready", exc.message)
    except TimeoutError:
        return error_response(503, "not_ready", "The model deployments did not answer in time.")
    return {"status": "ready", "storage": services.settings.storage_backend}


@router.get("/v1/models")
async def models(services: Services = Depends(get_services)) -> dict[str, Any]:
    """Separation models (stems, sample rate, loaded?) and transcription models."""
    separation = await services.launcher.separation_models()
    return {
        "separation": {
            "default": services.args.separation.default_model,
            "models": list(separation.values()),
        },
        "transcription": {
            "default": services.args.transcription.default_model,
            "models": [{"name": name} for name in services.args.transcription.models],
        },
    }
