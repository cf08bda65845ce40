"""``POST /v1/uploads``: a presigned PUT so big files bypass the Serve proxy."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from deployments.api import intake
from deployments.api.bodies import max_upload_bytes
from deployments.api.services import AppServices, Owner
from deployments.api.urls import absolute
from pipelines.errors import PayloadTooLarge

router = APIRouter(prefix="/v1", tags=["uploads"])


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255, description="Original file name.")
    content_type: str = Field(default="application/octet-stream", max_length=100)
    bytes: int = Field(gt=0, description="Size of the file to upload.")


@router.post("/uploads", status_code=201)
async def create_upload(
    body: UploadRequest,
    request: Request,
    services: AppServices,
    owner: Owner,
) -> dict[str, Any]:
    """Reserve an upload; PUT the bytes to ``put_url``, then pass ``upload_id`` to a job.

    The URL grants one PUT of at most ``bytes`` to this upload's input and nothing
    else; a larger object is deleted when a job names it.
    """
    limit = max_upload_bytes(services)
    if body.bytes > limit:
        raise PayloadTooLarge(
            f"The file is {body.bytes} bytes; the upload limit is {limit} bytes.",
            details={"limit_bytes": limit},
        )
    upload_id = await intake.reserve(services, owner, body.filename, body.bytes)
    signed = services.storage.presign_put(
        intake.upload_input_key(upload_id), services.settings.url_ttl_seconds, body.content_type
    )
    return {
        "upload_id": upload_id,
        "put_url": absolute(request, services, signed.url),
        "expires_at": signed.to_dict()["expires_at"],
        "headers": {"Content-Type": body.content_type},
        "max_bytes": body.bytes,
    }
