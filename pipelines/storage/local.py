"""The ``local`` backend: objects are files under one directory.

Layout: key ``jobs/j1/job.json`` is the file ``{root}/jobs/j1/job.json``; its
content type sits in the hidden sidecar ``{root}/jobs/j1/.job.json.meta.json``.
Every write goes to a hidden temporary file that ``os.replace`` moves into place,
so a reader sees the old object or the new one, never half of one. Keys cannot
name hidden files (see ``validate_key``), so sidecars, temporary files and the
signing secret are out of reach of every caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from os import PathLike
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from pipelines.errors import InvalidRequest, NotFound, StorageUnavailable
from pipelines.storage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    PresignedUrl,
    check_range,
    guess_content_type,
    resolve_ttl,
    utc_from_timestamp,
    validate_key,
    validate_prefix,
)
from pipelines.storage.conditional import Versioned
from pipelines.storage.signing import UrlSigner


class LocalStorage:
    """Objects in a directory, handed out through URLs signed by ``signer``.

    URLs look like ``{files_url}{key}?exp=<unix>&sig=<hex>``, ``files_url`` being where
    the API serves these objects (``/v1/files/``, or that under a public origin).
    Downloads and uploads share that shape; the signature binds the HTTP method, so
    the API verifies with ``url_signer.verify(request_method, key, exp, sig)`` (``HEAD``
    as ``GET``). A path-only ``files_url`` gives root-relative URLs for the API to
    complete with the request's own origin; processes that hand out no URLs leave it
    empty.
    """

    def __init__(
        self, root: Path, signer: UrlSigner, default_ttl: int, files_url: str = ""
    ) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url_signer: UrlSigner = signer
        self.default_ttl = default_ttl
        self.files_url = files_url

    def path(self, key: str) -> Path:
        """The file that holds ``key`` (validated; it may not exist)."""
        return self.root.joinpath(*validate_key(key).split("/"))

    def put(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> int:
        """Write atomically; file-like ``data`` is copied in 1 MiB chunks."""
        target = self.path(key)
        meta = json.dumps({"content_type": content_type or guess_content_type(key)}).encode()
        with _writing(key):
            size = _write_atomic(target, lambda out: _copy(data, out))
            _write_atomic(_meta_path(target), lambda out: out.write(meta))
        return size

    def get(self, key: str) -> bytes:
        """The whole object."""
        path = self.path(key)
        with _reading(key):
            return path.read_bytes()

    def get_versioned(self, key: str) -> Versioned:
        """The whole object and the MD5 of its content as its version."""
        data = self.get(key)
        return Versioned(data, _md5(data))

    def put_if(
        self, key: str, data: bytes, version: str | None, content_type: str | None = None
    ) -> str | None:
        """Compare and write under an exclusive lock (see ``pipelines.storage.conditional``)."""
        with _writing(".conditional.lock"), (self.root / ".conditional.lock").open("ab") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                current: str | None = self.get_versioned(key).version
            except NotFound:
                current = None
            if current != version:
                return None
            self.put(key, data, content_type)
        return _md5(data)

    def stream(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive); see ``Storage.stream``."""
        check_range(start, end)
        self.stat(key)
        return self._chunks(key, start, end, chunk_size)

    def _chunks(self, key: str, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
        remaining = None if end is None else end - start + 1
        with _reading(key), self.path(key).open("rb") as file:
            file.seek(start)
            while remaining is None or remaining > 0:
                chunk = file.read(chunk_size if remaining is None else min(chunk_size, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def stat(self, key: str) -> ObjectInfo:
        """Size, content type (from the sidecar, else guessed) and mtime."""
        path = self.path(key)
        with _reading(key):
            info = path.stat()
            if path.is_dir():
                raise IsADirectoryError(key)
        return ObjectInfo(key, info.st_size, _read_content_type(path, key), _mtime(info))

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file and its sidecar, then any directories left empty."""
        path = self.path(key)
        with _writing(key):
            path.unlink(missing_ok=True)
            _meta_path(path).unlink(missing_ok=True)
        self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (which must not be empty)."""
        if not validate_prefix(prefix):
            raise InvalidRequest("Refusing to delete with an empty prefix.")
        keys = [info.key for info in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Files under ``prefix`` in key order, hidden files skipped."""
        validate_prefix(prefix)
        top = self.root.joinpath(*prefix.split("/")[:-1])
        found = [info for info in self._walk(top) if info.key.startswith(prefix)]
        yield from sorted(found, key=lambda info: info.key)

    def _walk(self, top: Path) -> Iterator[ObjectInfo]:
        for folder, dirs, files in os.walk(top):
            dirs[:] = [name for name in dirs if not name.startswith(".")]
            for name in files:
                info = self._listed(Path(folder, name))
                if info is not None:
                    yield info

    def _listed(self, path: Path) -> ObjectInfo | None:
        key = path.relative_to(self.root).as_posix()
        try:
            validate_key(key)
            info = path.stat()
        except (InvalidRequest, FileNotFoundError):
            return None  # a hidden file, or one deleted while we walked
        return ObjectInfo(key, info.st_size, None, _mtime(info))

    def presign_get(
        self, key: str, ttl: int | None = None, filename: str | None = None
    ) -> PresignedUrl:
        """A signed ``GET`` URL; ``filename`` is passed on for ``Content-Disposition``."""
        extra = {"filename": filename} if filename else {}
        return self._presign("GET", key, ttl, extra)

    def presign_put(
        self, key: str, ttl: int | None = None, content_type: str | None = None
    ) -> PresignedUrl:
        """A signed ``PUT`` URL.

        ``content_type`` is not enforced here: the ingress stores whatever
        ``Content-Type`` the upload request carries.
        """
        return self._presign("PUT", key, ttl, {})

    def _presign(
        self, method: str, key: str, ttl: int | None, extra: dict[str, str]
    ) -> PresignedUrl:
        validate_key(key)
        exp = int(time.time()) + resolve_ttl(ttl, self.default_ttl)
        signature = self.url_signer.sign(method, key, exp, extra.get("filename"))
        query = urlencode({"exp": exp, "sig": signature, **extra})
        url = f"{self.files_url}{quote(key, safe='/')}?{query}"
        return PresignedUrl(url, utc_from_timestamp(exp))

    def ping(self) -> None:
        """Check that the root directory exists and is writable."""
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"Storage directory {self.root} is not writable.")

    def download_to(self, key: str, path: str | PathLike[str]) -> None:
        """Copy the file to ``path``."""
        source = self.path(key)
        with _reading(key):
            shutil.copyfile(source, path)

    def _prune(self, folder: Path) -> None:
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return  # not empty (or already gone): stop climbing
            folder = folder.parent


def _meta_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.meta.json")


def _read_content_type(path: Path, key: str) -> str:
    try:
        value = json.loads(_meta_path(path).read_bytes()).get("content_type")
    except (OSError, ValueError, AttributeError):
        value = None
    return value if isinstance(value, str) else guess_content_type(key)


def _mtime(info: os.stat_result) -> datetime:
    return utc_from_timestamp(info.st_mtime)


def _copy(data: bytes | BinaryIO, out: BinaryIO) -> int:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return out.write(data)
    size = 0
    while chunk := data.read(CHUNK_SIZE):
        size += out.write(chunk)
    return size


def _write_atomic(target: Path, write: Callable[[BinaryIO], int]) -> int:
    fd, tmp = _temp_beside(target)
    try:
        with os.fdopen(fd, "wb") as out:
            size = write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return size


def _temp_beside(target: Path) -> tuple[int, str]:
    for _ in range(3):
        target.parent.mkdir(parents=True, exist_ok=True)
        # A concurrent delete may prune the folder between mkdir and mkstemp.
        with contextlib.suppress(FileNotFoundError):
            return _mkstemp(target)
    return _mkstemp(target)


def _mkstemp(target: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")


@contextlib.contextmanager
def _reading(key: str) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise NotFound(f"No object named {key!r}.", details={"key": key}) from None
    except OSError as exc:
        raise StorageUnavailable(f"Cannot read {key!r}: {exc.strerror}.") from exc


@contextlib.contextmanager
def _writing(key: str) -> Iterator[None]:
    try:
        yield
    except (IsADirectoryError, NotADirectoryError, FileExistsError):
        raise InvalidRequest(
            f"Object key {key!r} clashes with an existing key prefix on local storage.",
            details={"key": key},
        ) from None
    except OSError as exc:
        raise StorageUnavailable(f"Cannot write {key!r}: {exc.strerror}.") from exc


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
