"""A job's input, brought into storage and probed before the job is accepted.

Every form of input ends the same way: its bytes sit at ``uploads/{id}/input``, a key
the server derives (clients never name keys), and have passed the one probe
(:func:`pipelines.audio.probe`: accepted container, no nested files or network, at
most 8 channels, samples that decode, a length within the limit).

- multipart ``file=``: probed from the request's spooled body, then stored;
- ``input.upload_id``: the reservation's owner must be the caller; the object must
  not exceed the size it declared (else it is deleted); probed by ranged reads;
- ``input.url``: fetched here (address checked and pinned, size and time capped),
  probed, then stored, so the job never fetches anything itself.

The reservation record ``uploads/{id}/upload.json`` sits beside the input, where no
presigned URL can reach it: the only key ever signed for a client is ``…/input``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ValidationError

from deployments.api.bodies import max_upload_bytes
from deployments.api.services import Services
from pipelines import audio
from pipelines.errors import AudioTooLong, InvalidRequest, NotFound, PayloadTooLarge
from pipelines.fetch import fetch_url
from pipelines.storage.reader import open_object

INPUT_NAME = "input"
META_NAME = "upload.json"
RESERVED_NAMES = frozenset({INPUT_NAME, META_NAME})
"""File names of the upload folder's own objects, refused as client file names."""
_UPLOAD_ID = re.compile(r"[0-9a-f]{24}")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


Admit = Callable[[audio.AudioInfo, int], None]
"""Called with a probed input's headers and size before it is stored; raises to refuse
it (the scratch-disk check: 507)."""


def admit_any(info: audio.AudioInfo, size: int) -> None:
    """Admit every probed input (an upload stored before any job names it)."""


class UploadReservation(BaseModel):
    """What ``POST /v1/uploads`` recorded: who may use the upload, and its declared size."""

    owner: str
    filename: str
    bytes: int


@dataclass(frozen=True)
class StoredInput:
    """A job's input as its record keeps it: the derived key and a display name, and
    the SHA-256 of its bytes when the result cache needs it."""

    key: str
    filename: str
    sha256: str | None = None

    @property
    def upload_id(self) -> str:
        return self.key.split("/")[1]

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def new_upload_id() -> str:
    return secrets.token_hex(12)


def upload_input_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/{INPUT_NAME}"


def upload_meta_key(upload_id: str) -> str:
    return f"uploads/{upload_id}/{META_NAME}"


def is_upload_input_key(key: str) -> bool:
    """Whether ``key`` is an upload's input: the one key a client may PUT."""
    prefix, _, upload_id = key.removesuffix(f"/{INPUT_NAME}").partition("/")
    return (
        prefix == "uploads"
        and key.endswith(f"/{INPUT_NAME}")
        and bool(_UPLOAD_ID.fullmatch(upload_id))
    )


def safe_filename(name: str | None, default: str = "input") -> str:
    """A display-safe base name: no directories, no odd characters, bounded length."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._")[:100]
    return cleaned or default


def reserved_filename(name: str) -> str:
    """``safe_filename(name)``, refusing the names of the upload folder's own objects."""
    cleaned = safe_filename(name)
    if cleaned.lower() in RESERVED_NAMES:
        raise InvalidRequest(
            f"The file name {cleaned!r} is reserved; rename the file.",
            details={"field": "filename"},
        )
    return cleaned


async def store_body(
    services: Services,
    file: BinaryIO,
    filename: str | None,
    content_type: str | None,
    admit: Admit,
    *,
    digest: bool = False,
) -> StoredInput:
    """Probe a request body's file, then store it as a new upload's input."""
    await _probe_and_admit(services, file, admit)
    sha256 = await _sha256(file) if digest else None  # before storing: S3 closes the file
    stored = await _store(services, file, safe_filename(filename), content_type)
    return replace(stored, sha256=sha256)


async def store_url(
    services: Services, url: str, admit: Admit, *, digest: bool = False
) -> StoredInput:
    """Fetch ``url`` (checked, pinned, capped), probe it, store it as a new upload's input."""
    limits = services.args.limits
    with tempfile.TemporaryDirectory(prefix="stemscribe-url-") as folder:
        path = Path(folder) / INPUT_NAME
        await asyncio.to_thread(
            fetch_url,
            url,
            path,
            max_bytes=max_upload_bytes(services),
            timeout=limits.max_url_download_seconds,
            allow_private=services.settings.allow_private_urls,
        )
        with path.open("rb") as file:
            await _probe_and_admit(services, file, admit)
            sha256 = await _sha256(file) if digest else None
            stored = await _store(services, file, safe_filename(url), None)
            return replace(stored, sha256=sha256)


async def stored_upload(
    services: Services, upload_id: str, owner: str, admit: Admit, *, digest: bool = False
) -> StoredInput:
    """The caller's reserved upload, size-checked and probed where it is stored."""
    reservation = await find_reservation(services, upload_id, owner)
    key = upload_input_key(upload_id)
    try:
        info = await asyncio.to_thread(services.storage.stat, key)
    except NotFound:
        raise InvalidRequest(
            f"Upload {upload_id} has no data yet: PUT the file to its put_url first.",
            details={"upload_id": upload_id},
        ) from None
    limit = min(reservation.bytes, max_upload_bytes(services))
    if info.size > limit:
        await asyncio.to_thread(services.storage.delete, key)
        raise PayloadTooLarge(
            f"Upload {upload_id} holds {info.size} bytes, more than the {limit} it was "
            "reserved for; it was deleted. Reserve a new upload with the right size.",
            details={"upload_id": upload_id, "limit_bytes": limit},
        )
    with open_object(services.storage, key, info.size) as file:
        await _probe_and_admit(services, file, admit)
        sha256 = await _sha256(file) if digest else None
    return StoredInput(key, reservation.filename, sha256)


async def find_reservation(services: Services, upload_id: str, owner: str) -> UploadReservation:
    """The reservation of ``upload_id`` if ``owner`` made it; else ``NotFound``."""
    missing = NotFound(f"No upload with id {upload_id!r}.")
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise missing
    try:
        raw = await asyncio.to_thread(services.storage.get, upload_meta_key(upload_id))
        reservation = UploadReservation.model_validate_json(raw)
    except (NotFound, ValidationError):
        raise missing from None
    if reservation.owner != owner:
        raise missing
    return reservation


async def reserve(services: Services, owner: str, filename: str, size: int) -> str:
    """Record a new upload for ``owner``; its id."""
    upload_id = new_upload_id()
    reservation = UploadReservation(owner=owner, filename=reserved_filename(filename), bytes=size)
    await record_reservation(services, upload_id, reservation)
    return upload_id


async def record_reservation(
    services: Services, upload_id: str, reservation: UploadReservation
) -> None:
    data = reservation.model_dump_json().encode()
    await asyncio.to_thread(
        services.storage.put, upload_meta_key(upload_id), data, "application/json"
    )


async def declared_size(services: Services, key: str) -> int | None:
    """The size the reservation of an upload input ``key`` declared; None if unknown."""
    upload_id = key.split("/")[1]
    try:
        raw = await asyncio.to_thread(services.storage.get, upload_meta_key(upload_id))
        return UploadReservation.model_validate_json(raw).bytes
    except (NotFound, ValidationError):
        return None


async def _store(
    services: Services, file: BinaryIO, filename: str, content_type: str | None
) -> StoredInput:
    key = upload_input_key(new_upload_id())
    file.seek(0)
    await asyncio.to_thread(services.storage.put, key, file, content_type)
    return StoredInput(key, filename)


async def _sha256(file: BinaryIO) -> str:
    """The SHA-256 of ``file``'s bytes, read from the start."""

    def digest() -> str:
        file.seek(0)
        hashed = hashlib.sha256()
        while chunk := file.read(1 << 20):
            hashed.update(chunk)
        return hashed.hexdigest()

    return await asyncio.to_thread(digest)


async def _probe_and_admit(services: Services, file: BinaryIO, admit: Admit) -> None:
    info = await asyncio.to_thread(_probe, file, services.args.limits.max_audio_seconds)
    size = file.seek(0, 2)
    await asyncio.to_thread(admit, info, size)


def _probe(file: BinaryIO, max_seconds: float) -> audio.AudioInfo:
    file.seek(0)
    info = audio.probe(file)
    if info.duration > max_seconds:
        raise AudioTooLong(
            f"The audio lasts {info.duration:.0f} s; the limit is {max_seconds:.0f} s.",
            details={"limit_seconds": max_seconds},
        )
    return info


def source_of(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(upload_id, url)`` of a JSON request's ``input`` object (exactly one is set)."""
    source = body.get("input")
    upload_id, url = (
        (source.get(k) for k in ("upload_id", "url")) if isinstance(source, dict) else (None, None)
    )
    if isinstance(upload_id, str) and not isinstance(url, str):
        return upload_id, None
    if isinstance(url, str) and not isinstance(upload_id, str):
        return None, url
    raise InvalidRequest(
        'JSON requests need an "input" object with either upload_id or url.',
        details={"field": "input"},
    )
