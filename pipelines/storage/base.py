"""The storage contract shared by every backend, and the rules all of them apply.

Keys are ``/``-separated relative paths such as ``jobs/{job_id}/outputs/vocals.wav``.
They are validated identically everywhere, because the ``local`` backend maps them
to files: a key must never name anything outside its root directory.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from os import PathLike
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import quote

from pipelines.errors import InvalidRequest
from pipelines.storage.conditional import Versioned
from pipelines.storage.signing import UrlSigner

MAX_KEY_BYTES = 1024
"""S3's own limit on a key's UTF-8 length."""

MAX_SEGMENT_BYTES = 200
"""Leaves room under the usual 255-byte file name limit for the local backend's sidecars."""

MAX_TTL_SECONDS = 7 * 24 * 3600
"""SigV4 refuses presigned URLs that live longer than a week."""

CHUNK_SIZE = 1 << 20

_CONTENT_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".m4a": "audio/mp4",
    ".json": "application/json",
    ".zip": "application/zip",
    ".srt": "application/x-subrip",
    ".vtt": "text/vtt",
    ".lrc": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object."""

    key: str
    size: int
    content_type: str | None
    """``None`` in listings: S3 listings do not carry it, so neither backend fills it there."""
    modified: datetime
    """Last write time, timezone-aware UTC."""


@dataclass(frozen=True)
class PresignedUrl:
    """A URL that grants one method on one object until ``expires_at``."""

    url: str
    expires_at: datetime

    def to_dict(self) -> dict[str, str]:
        """JSON form: ``{"url": ..., "expires_at": "2025-01-31T12:00:00Z"}``."""
        return {"url": self.url, "expires_at": isoformat_utc(self.expires_at)}


@runtime_checkable
class Storage(Protocol):
    """Object storage for uploads, job records and outputs.

    Every method raises ``InvalidRequest`` for a malformed key, ``NotFound`` for a
    missing object (where one is needed) and ``StorageUnavailable`` when the backend
    cannot be reached.

    What differs between backends is stated here, typed, rather than found out by
    asking which backend it is: ``url_signer`` (whether this service serves the
    backend's URLs itself) and the compare-and-swap pair ``get_versioned``/``put_if``
    (see ``pipelines.storage.conditional``). File-like ``put`` data is streamed by
    every backend (S3 in multipart parts), so callers never need to know which.
    """

    @property
    def url_signer(self) -> UrlSigner | None:
        """The signer of the URLs this service serves for the backend (``local``), which
        the API verifies them with; ``None`` when the backend's own URLs are presigned
        (``s3``)."""
        ...

    def put(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> int:
        """Store ``data`` atomically under ``key`` and return the bytes written.

        File-like ``data`` is streamed from its current position. Without
        ``content_type`` one is guessed from the key's extension.
        """
        ...

    def get(self, key: str) -> bytes:
        """The whole object (use ``stream`` for big ones)."""
        ...

    def stream(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Iterator[bytes]:
        """Bytes ``start..end`` of the object, **end inclusive** as in HTTP ``Range``.

        ``end=None`` or past the object means up to the last byte; ``start`` at or past
        the end yields nothing. The object is opened before this returns, so
        ``NotFound`` is raised by the call itself, not by the first ``next``.
        """
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size, content type and modification time of one object."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with ``prefix`` (non-empty); return how many."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (a plain string prefix).

        Order is the backend's: AWS and ``local`` list in key order, but some
        compatible stores (SeaweedFS) list folder by folder; sort if order matters.
        """
        ...

    def presign_get(
        self, key: str, ttl: int | None = None, filename: str | None = None
    ) -> PresignedUrl:
        """A download URL; ``filename`` makes browsers save it under that name."""
        ...

    def presign_put(
        self, key: str, ttl: int | None = None, content_type: str | None = None
    ) -> PresignedUrl:
        """An upload URL for an HTTP ``PUT`` of the raw bytes.

        With ``content_type`` the uploader must send exactly that ``Content-Type``.
        """
        ...

    def ping(self) -> None:
        """Return if the backend is usable, else raise ``StorageUnavailable``."""
        ...

    def download_to(self, key: str, path: str | PathLike[str]) -> None:
        """Copy the object into a local file (for tools that need a path)."""
        ...

    def get_versioned(self, key: str) -> Versioned:
        """The object and its version; ``NotFound`` when missing."""
        ...

    def put_if(
        self, key: str, data: bytes, version: str | None, content_type: str | None = None
    ) -> str | None:
        """Write ``data`` if the object is at ``version`` (``None``: absent); the new version.

        ``None`` when the condition failed (someone else wrote first).
        """
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise ``InvalidRequest``.

    Rules: 1 to 1024 UTF-8 bytes; ``/``-separated non-empty segments of at most 200
    bytes; no leading ``/``, backslash, NUL or control character; no segment that is
    ``.`` or ``..`` or starts with ``.`` (dot-names are the local backend's hidden files).
    """
    if not isinstance(key, str) or not key:
        raise _bad_key(key, "must be a non-empty string")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise _bad_key(key, f"is longer than {MAX_KEY_BYTES} bytes")
    if key.startswith("/"):
        raise _bad_key(key, "must be relative (no leading '/')")
    if "\\" in key or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise _bad_key(key, "must not contain backslashes or control characters")
    for segment in key.split("/"):
        _check_segment(key, segment)
    return key


def validate_prefix(prefix: str) -> str:
    """Like ``validate_key`` but the empty prefix and a trailing ``/`` are allowed."""
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/"))
    return prefix


def _check_segment(key: str, segment: str) -> None:
    if not segment:
        raise _bad_key(key, "must not contain empty segments ('//' or a trailing '/')")
    if segment.startswith("."):
        raise _bad_key(key, "must not contain segments starting with '.' (such as '..')")
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        raise _bad_key(key, f"has a segment longer than {MAX_SEGMENT_BYTES} bytes")


def _bad_key(key: object, why: str) -> InvalidRequest:
    return InvalidRequest(f"Object key {why}.", details={"key": repr(key)[:200]})


def resolve_ttl(ttl: int | None, default: int) -> int:
    """The lifetime to sign with: ``ttl`` or ``default``, checked against SigV4's week."""
    seconds = default if ttl is None else ttl
    if not 1 <= seconds <= MAX_TTL_SECONDS:
        raise InvalidRequest(
            f"URL lifetime must be between 1 and {MAX_TTL_SECONDS} seconds.",
            details={"ttl": seconds},
        )
    return seconds


def check_range(start: int, end: int | None) -> None:
    """Reject byte ranges no backend can serve (negative, or ending before they start)."""
    if start < 0 or (end is not None and end < start):
        raise InvalidRequest("Invalid byte range.", details={"start": start, "end": end})


def guess_content_type(key: str) -> str:
    """Content type from the key's extension; ``application/octet-stream`` if unknown."""
    dot = key.rfind(".")
    extension = key[dot:].lower() if dot > key.rfind("/") else ""
    known = _CONTENT_TYPES.get(extension)
    return known or mimetypes.guess_type(key, strict=True)[0] or "application/octet-stream"


def content_disposition(filename: str) -> str:
    """An RFC 6266 ``attachment`` header value that survives any characters in ``filename``."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def isoformat_utc(moment: datetime) -> str:
    """``2025-01-31T12:00:00Z``: ISO-8601 in UTC, whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_from_timestamp(seconds: float) -> datetime:
    """A timezone-aware UTC datetime from a Unix time."""
    return datetime.fromtimestamp(seconds, tz=UTC)
