"""Environment settings: infrastructure and secrets, never in YAML.

Every variable is read with the ``STEMSCRIBE_`` prefix, e.g.
``STEMSCRIBE_STORAGE_BACKEND=s3``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where results live and how their URLs are signed."""

    model_config = SettingsConfigDict(env_prefix="STEMSCRIBE_", extra="ignore")

    storage_backend: Literal["local", "s3"] = "local"
    """``local``: a directory (one machine, or a shared volume); ``s3``: any S3-compatible store."""

    data_dir: Path = Path("data")
    """Root directory of the ``local`` backend; also holds the generated signing secret."""

    bucket: str = "stemscribe"
    """S3 bucket for uploads, job records and outputs (must follow S3 naming rules)."""

    s3_endpoint_url: str | None = None
    """S3 endpoint the cluster uses (MinIO, SeaweedFS, R2...); unset means AWS."""

    s3_public_endpoint_url: str | None = None
    """Endpoint clients reach storage at; used only to presign URLs. Defaults to ``s3_endpoint_url``."""

    s3_region: str = "us-east-1"
    """Region used for request signing."""

    s3_access_key_id: SecretStr | None = None
    """S3 access key; unset falls back to boto3's usual credential chain."""

    s3_secret_access_key: SecretStr | None = None
    """S3 secret key; unset falls back to boto3's usual credential chain."""

    s3_path_style: bool = True
    """Address buckets as ``endpoint/bucket/key`` (MinIO, SeaweedFS) instead of virtual hosts."""

    s3_create_bucket: bool = True
    """Create the bucket at start when it does not exist (handy for dev stores)."""

    s3_connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a TCP connection to the S3 endpoint before retrying."""

    s3_read_timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for S3 to send data on an open connection before retrying."""

    s3_max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per S3 call (first try included), with botocore's ``standard`` backoff."""

    signing_secret: SecretStr | None = None
    """HMAC key for ``local`` file URLs. Unset: a random key kept in ``data_dir/.signing-secret``."""

    url_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    """Lifetime of every presigned or signed download/upload URL."""

    public_base_url: str | None = None
    """Absolute base (``https://api.example.com``) for ``local`` file URLs; unset: the request's own."""

    allow_private_urls: bool = False
    """Let ``input.url`` reach private, loopback and link-local addresses (tests, trusted LANs)."""
