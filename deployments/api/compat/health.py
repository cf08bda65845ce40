"""``GET /health`` as both earlier servers answered it (one route serves both shapes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from deployments.api.services import AppServices

router = APIRouter(tags=["compat"], include_in_schema=False)


@router.get("/health")
async def health(services: AppServices) -> dict[str, Any]:
    """The process answers; which model families it serves (readiness: ``/readyz``)."""
    return {
        "status": "healthy",
        "message": "stemscribe is running.",
        "available_models": ["demucs", "whisper"],
        "websocket_support": True,
        "transcription_endpoint": "/transcribe",
        "default_model": services.args.separation.default_model,
    }
