"""Liveness, readiness and the model catalogue."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from deployments.api.errors import error_response
from deployments.api.services import AppServices
from pipelines.errors import StemscribeError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(services: AppServices) -> dict[str, Any] | JSONResponse:
    """Storage is reachable and the model deployments answer; each model's state.

    Models load in the background, so the service is ready before they are: ``models``
    says which are ``loading``, ``ready``, ``not_loaded`` (fetched on first use) or
    ``failed`` (with the reason; requests for them get 503 ``model_unavailable``).
    """
    try:
        await asyncio.to_thread(services.storage.ping)
        separation, transcription = await asyncio.wait_for(
            asyncio.gather(
                services.launcher.separation_models(), services.transcriber.model_states()
            ),
            timeout=60,
        )
    except StemscribeError as exc:
        return error_response(503, "not_ready", exc.message)
    except TimeoutError:
        return error_response(503, "not_ready", "The model deployments did not answer in time.")
    return {
        "status": "ready",
        "storage": services.settings.storage_backend,
        "models": {
            "separation": {name: _state(info) for name, info in separation.items()},
            "transcription": transcription,
        },
    }


def _state(info: dict[str, Any]) -> dict[str, Any]:
    return {key: info[key] for key in ("status", "error") if key in info}


@router.get("/v1/models")
async def models(services: AppServices) -> dict[str, Any]:
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
