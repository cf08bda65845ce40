"""Object storage for uploads, job records and outputs: S3 or a local directory.

``open_storage(settings)`` returns the configured ``Storage``; callers use only
that protocol, so the rest of the service does not know which backend it runs on.
"""

from __future__ import annotations

from pipelines.storage.base import (
    ObjectInfo,
    PresignedUrl,
    Storage,
    content_disposition,
    guess_content_type,
    validate_key,
    validate_prefix,
)
from pipelines.storage.factory import load_signer, open_storage
from pipelines.storage.local import LocalStorage
from pipelines.storage.s3 import S3Storage
from pipelines.storage.signing import UrlSigner

__all__ = [
    "LocalStorage",
    "ObjectInfo",
    "PresignedUrl",
    "S3Storage",
    "Storage",
    "UrlSigner",
    "content_disposition",
    "guess_content_type",
    "load_signer",
    "open_storage",
    "validate_key",
    "validate_prefix",
]
