"""Build the configured backend from ``Settings``."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from config.settings import Settings
from pipelines.storage.base import Storage
from pipelines.storage.local import LocalStorage
from pipelines.storage.s3 import S3Storage
from pipelines.storage.signing import UrlSigner

SECRET_FILE = ".signing-secret"
"""File under ``data_dir`` holding the generated key when no ``signing_secret`` is set."""


def open_storage(settings: Settings, *, files_url: str = "") -> Storage:
    """The backend that ``settings.storage_backend`` names, ready to use.

    ``files_url``: where the API serves the ``local`` backend's objects, which its
    signed URLs start with (the API passes it; other processes hand out no URLs).
    """
    if settings.storage_backend == "local":
        return LocalStorage(
            settings.data_dir, load_signer(settings), settings.url_ttl_seconds, files_url
        )
    return S3Storage(
        settings.bucket,
        endpoint_url=settings.s3_endpoint_url,
        public_endpoint_url=settings.s3_public_endpoint_url,
        region=settings.s3_region,
        access_key_id=_reveal(settings.s3_access_key_id),
        secret_access_key=_reveal(settings.s3_secret_access_key),
        path_style=settings.s3_path_style,
        default_ttl=settings.url_ttl_seconds,
        create_bucket=settings.s3_create_bucket,
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        max_attempts=settings.s3_max_attempts,
    )


def load_signer(settings: Settings) -> UrlSigner:
    """The signer for ``local`` file URLs; the ingress verifies with the same one.

    Without ``signing_secret`` the key is read from ``data_dir/.signing-secret``,
    created (mode 0600) by the first process that needs it, so every process using
    that directory signs alike.
    """
    if settings.signing_secret is not None:
        return UrlSigner(settings.signing_secret.get_secret_value().encode())
    return UrlSigner(_read_or_create_secret(Path(settings.data_dir) / SECRET_FILE))


def _read_or_create_secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _publish_secret(path)
    return path.read_bytes().strip()


def _publish_secret(path: Path) -> None:
    # Written in full under a temporary name, then linked into place: a process
    # racing us sees no file or the whole one, and exactly one link wins.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_hex(32).encode())
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()
