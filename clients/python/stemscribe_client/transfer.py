"""Moving bytes to and from storage: the presigned upload, and downloads that resume.

Storage URLs are signed, so these requests carry no API key (S3 refuses a request
signed twice).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from stemscribe_client.api import Client, ClientError, describe_failure, reaching
from stemscribe_client.progress import Bar, Progress

__all__ = ["Download", "download", "fetch", "storage_client", "upload"]

CHUNK = 256 * 1024
RETRIES = 3


def storage_client(timeout: float = 60.0) -> httpx.Client:
    """An HTTP client for signed storage URLs."""
    return httpx.Client(timeout=timeout, follow_redirects=True)


def upload(client: Client, storage: httpx.Client, path: Path, progress: Progress) -> str:
    """Reserve an upload, PUT ``path`` to its signed URL (counting bytes), return its id."""
    size = path.stat().st_size
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    reservation = client.reserve_upload(path.name, size, content_type)
    headers = dict(reservation.get("headers") or {}) | {"Content-Length": str(size)}
    with progress.bytes(f"upload {path.name}", size) as bar:
        with reaching("storage", reservation["put_url"]):
            response = storage.put(
                reservation["put_url"], content=_chunks(path, bar), headers=headers
            )
        if response.is_error:
            raise ClientError(f"upload failed: {describe_failure(response)}")
    return str(reservation["upload_id"])


def _chunks(path: Path, bar: Bar) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk
            bar.advance(len(chunk))


@dataclass(frozen=True)
class Download:
    """A finished download."""

    path: Path
    fetched: int
    """Bytes that came over the network in this call (less than the size after a resume)."""
    resumed_from: int
    """Size of the ``.part`` file the last request continued from (0: from the start)."""


def part_path(dest: Path) -> Path:
    """Where ``dest`` grows until it is complete."""
    return dest.with_name(dest.name + ".part")


def fetch(
    storage: httpx.Client, url: str, dest: Path, expected: int | None = None, bar: Bar | None = None
) -> Download:
    """Download ``url`` to ``dest`` through ``dest.part``, continuing a partial one.

    An existing ``.part`` is continued with ``Range: bytes=<size>-``: 206 appends, 200
    starts over. The result must have ``expected`` bytes (when given) before it is
    renamed to ``dest``.
    """
    part = part_path(dest)
    have = part.stat().st_size if part.exists() else 0
    if expected is not None and have > expected:
        have = 0  # not a prefix of this file
    headers = {"Range": f"bytes={have}-"} if have else {}
    fetched = 0
    with reaching("storage", url), storage.stream("GET", url, headers=headers) as response:
        if response.status_code == 416 and have == expected:
            part.replace(dest)
            return Download(dest, 0, have)
        if response.is_error:
            raise ClientError(f"download of {dest.name} failed: {describe_failure(response)}")
        resumed = response.status_code == 206
        if resumed and _range_start(response) != have:
            raise ClientError(f"download of {dest.name}: the server sent another range")
        start = have if resumed else 0
        if bar is not None:
            bar.total = expected or _length(response, start)
            bar.update(start)
        with part.open("ab" if resumed else "wb") as file:
            for chunk in response.iter_bytes(CHUNK):
                file.write(chunk)
                fetched += len(chunk)
                if bar is not None:
                    bar.advance(len(chunk))
    return Download(_complete(part, dest, expected), fetched, start)


def _range_start(response: httpx.Response) -> int | None:
    """First byte of a ``Content-Range: bytes a-b/n`` answer."""
    value = response.headers.get("content-range", "")
    first = value.removeprefix("bytes ").split("-", 1)[0]
    return int(first) if first.isdigit() else None


def _length(response: httpx.Response, start: int) -> int | None:
    length = response.headers.get("content-length")
    return start + int(length) if length and length.isdigit() else None


def _complete(part: Path, dest: Path, expected: int | None) -> Path:
    size = part.stat().st_size
    if expected is not None and size != expected:
        if size > expected:
            part.unlink()
        raise ClientError(f"download of {dest.name} has {size} bytes, expected {expected}")
    part.replace(dest)
    return dest


def download(
    storage: httpx.Client,
    link: dict[str, Any],
    dest: Path,
    progress: Progress,
    resume_existing: bool = False,
) -> Download:
    """Download one job output (``{url, bytes, ...}``) to ``dest`` with a progress bar.

    A dropped connection is retried from where it stopped; a ``.part`` left by an
    earlier run is continued only with ``resume_existing`` (it may belong to another job).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not resume_existing:
        part_path(dest).unlink(missing_ok=True)
    expected = link.get("bytes")
    with progress.bytes(f"download {dest.name}", expected) as bar:
        for attempt in range(RETRIES):
            try:
                return fetch(storage, link["url"], dest, expected, bar)
            except ClientError:
                if attempt == RETRIES - 1 or not part_path(dest).exists():
                    raise
    raise AssertionError("unreachable")
