"""Environment settings: infrastructure and secrets, never in YAML.

Every variable is read with the ``STEMSCRIBE_`` prefix, e.g.
``STEMSCRIBE_STORAGE_BACKEND=s3``. Where ``STEMSCRIBE_SECRETS_DIR`` names a directory,
a file there named like a variable (``STEMSCRIBE_S3_SECRET_ACCESS_KEY``) supplies its
value too, so secrets can be mounted as files instead of passed in the environment;
a variable set in the environment wins over its file.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_API_KEY_LENGTH = 16
WEBHOOK_SECRET_PREFIX = "whsec_"
MIN_WEBHOOK_KEY_BYTES = 16
SECRETS_DIR_VARIABLE = "STEMSCRIBE_SECRETS_DIR"
"""Names a directory of files, one per setting (a Kubernetes Secret mounted as a volume)."""


class Settings(BaseSettings):
    """Where results live and how their URLs are signed."""

    # Errors never echo what was read: the values include keys and secrets.
    model_config = SettingsConfigDict(
        env_prefix="STEMSCRIBE_", extra="ignore", hide_input_in_errors=True
    )

    storage_backend: Literal["local", "s3"] = "local"
    """``local``: a directory (one machine, or a shared volume); ``s3``: any S3-compatible store."""

    data_dir: Path = Path("data")
    """Root directory of the ``local`` backend; also holds the generated signing secret."""

    bucket: str = "stemscribe"
    """S3 bucket for uploads, job records and outputs (must follow S3 naming rules)."""

    s3_endpoint_url: str | None = None
    """S3 endpoint the cluster uses (MinIO, SeaweedFS, R2...); unset means AWS."""

    s3_public_endpoint_url: str | None = None
    """Endpoint clients reach storage at; used only to presign URLs.

    Defaults to ``s3_endpoint_url``."""

    s3_region: str = "us-east-1"
    """Region used for request signing."""

    s3_access_key_id: SecretStr | None = None
    """S3 access key; unset falls back to boto3's usual credential chain."""

    s3_secret_access_key: SecretStr | None = None
    """S3 secret key; unset falls back to boto3's usual credential chain."""

    s3_path_style: bool = True
    """Address buckets as ``endpoint/bucket/key`` (MinIO, SeaweedFS) instead of virtual hosts."""

    s3_create_bucket: bool = False
    """Create the bucket at start when it does not exist (dev and test stores only). Off by
    default: in production the bucket, its CORS and lifecycle rules are made beforehand
    (docs/DEPLOY.md), and a name taken by someone else must fail loudly, not be created."""

    s3_connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a TCP connection to the S3 endpoint before retrying."""

    s3_read_timeout: float = Field(default=60.0, gt=0)
    """Seconds to wait for S3 to send data on an open connection before retrying."""

    s3_max_attempts: int = Field(default=5, ge=1, le=20)
    """Attempts per S3 call (first try included), with botocore's ``standard`` backoff."""

    storage_retry_seconds: float = Field(default=30.0, ge=0)
    """How long a job keeps retrying (with backoff) a storage call that fails because the
    store is unreachable, before the job fails with ``storage_unavailable``; per call, on
    top of ``s3_max_attempts``. 0: no retries beyond the backend's own."""

    signing_secret: SecretStr | None = None
    """HMAC key for ``local`` file URLs.

    Unset: a random key kept in ``data_dir/.signing-secret``."""

    url_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    """Lifetime of every presigned or signed download/upload URL."""

    public_base_url: str | None = None
    """Absolute base (``https://api.example.com``) for ``local`` file URLs.

    Unset: the request's own."""

    scratch_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "stemscribe-scratch"
    )
    """Local disk where running jobs keep their input, decoded track and stems (one
    folder per job, removed when it ends; a crashed replica's folders are swept). Its
    free space bounds how long a track can be: give it room (a 1-hour stereo separation
    into 4 stems takes about 5 GiB at its peak)."""

    scratch_reserve_mb: float = Field(default=512.0, ge=0)
    """Scratch disk (MiB) jobs leave free; a job that would need it is refused (507)."""

    allow_private_urls: bool = False
    """Let ``input.url`` and ``callback_url`` reach private, loopback and link-local
    addresses (tests, trusted LANs)."""

    webhook_secret: SecretStr | None = None
    """Key that signs job callbacks (Standard Webhooks): ``whsec_`` followed by the base64
    of at least 16 random bytes (``echo whsec_$(openssl rand -base64 32)``). Unset: jobs
    with a ``callback_url`` are refused (400), since receivers could not verify them."""

    api_keys: SecretStr | None = None
    """API keys and the tenant each acts for: ``tenant:key`` pairs separated by commas
    (or whitespace), e.g. ``acme:3f9c...,acme:77aa...,beta:d41e...``. A tenant may hold
    several keys (rotation); a key belongs to one tenant. Tenants are 1-64 characters of
    ``A-Z a-z 0-9 _ . -``; keys are at least 16 characters without commas or whitespace.
    Unset or empty: no key is asked for and every caller is the tenant ``public``
    (a warning is logged at start)."""

    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins whose browser pages may call the API, comma-separated
    (``https://app.example.com,https://admin.example.com``; ``*`` for any). Empty (the
    default): no cross-origin access; the bundled web page is same-origin and needs none."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then files in ``STEMSCRIBE_SECRETS_DIR``."""
        folder = os.environ.get(SECRETS_DIR_VARIABLE)
        if folder:
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=folder)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_api_keys(value.get_secret_value())
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_webhook_secret(value.get_secret_value())
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        return value

    def webhook_key(self) -> bytes | None:
        """The callback signing key's bytes; None when no secret is set."""
        if self.webhook_secret is None:
            return None
        return decode_webhook_secret(self.webhook_secret.get_secret_value())

    def tenant_keys(self) -> dict[str, str]:
        """API key -> tenant; empty when the service runs open."""
        if self.api_keys is None:
            return {}
        return parse_api_keys(self.api_keys.get_secret_value())


def parse_api_keys(raw: str) -> dict[str, str]:
    """``tenant:key`` pairs -> {key: tenant}; a ``ValueError`` never quotes a key."""
    keys: dict[str, str] = {}
    for position, entry in enumerate(re.split(r"[,\s]+", raw.strip()), start=1):
        if not entry:
            continue
        tenant, sep, key = entry.partition(":")
        if not sep or not TENANT_PATTERN.fullmatch(tenant):
            raise ValueError(
                f"STEMSCRIBE_API_KEYS entry {position}: write tenant:key, the tenant being "
                "1-64 characters of A-Z a-z 0-9 _ . - (starting with a letter or digit)"
            )
        if len(key) < MIN_API_KEY_LENGTH:
            raise ValueError(
                f"STEMSCRIBE_API_KEYS entry {position} (tenant {tenant!r}): the key must be "
                f"at least {MIN_API_KEY_LENGTH} characters (e.g. openssl rand -hex 24)"
            )
        if keys.get(key, tenant) != tenant:
            raise ValueError(
                f"STEMSCRIBE_API_KEYS entry {position}: this key is already given to tenant "
                f"{keys[key]!r}; a key belongs to one tenant"
            )
        keys[key] = tenant
    return keys


def decode_webhook_secret(text: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret; a ``ValueError`` never quotes it."""
    name = "STEMSCRIBE_WEBHOOK_SECRET"
    if not text.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"{name} must start with {WEBHOOK_SECRET_PREFIX}")
    try:
        key = base64.b64decode(text.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} must be {WEBHOOK_SECRET_PREFIX} followed by base64") from None
    if len(key) < MIN_WEBHOOK_KEY_BYTES:
        raise ValueError(f"{name} must hold at least {MIN_WEBHOOK_KEY_BYTES} bytes")
    return key
