"""Riding out a storage outage: every call retried with backoff within a time budget.

Jobs wrap their storage in ``RetryingStorage``: a store that restarts, fails over or
drops connections for a few seconds costs the job those seconds, not its result.
Past the budget the call raises ``StorageUnavailable`` (code ``storage_unavailable``)
and the job fails with it. The budget is per call, on top of the backend's own
retries (botocore's ``s3_max_attempts``), so one call can last the budget plus one
backend attempt. Only ``StorageUnavailable`` is retried: ``NotFound`` and
``InvalidRequest`` are answers, not outages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from os import PathLike
from typing import BinaryIO, TypeVar

from pipelines.errors import StorageUnavailable
from pipelines.storage.base import CHUNK_SIZE, ObjectInfo, PresignedUrl, Storage
from pipelines.storage.conditional import Versioned
from pipelines.storage.signing import UrlSigner

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryingStorage:
    """``Storage`` whose calls retry ``StorageUnavailable`` for up to ``budget`` seconds.

    ``on_failure(operation)`` hears of every failed attempt (metrics); a budget of 0
    retries nothing and only reports.
    """

    def __init__(
        self,
        inner: Storage,
        budget: float,
        *,
        first_delay: float = 0.2,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_failure: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.inner = inner
        self.budget = budget
        self._on_failure = on_failure
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._clock = clock

    @property
    def url_signer(self) -> UrlSigner | None:
        return self.inner.url_signer

    def _call(
        self, what: str, call: Callable[[], T], rewind: Callable[[], object] = lambda: None
    ) -> T:
        deadline = self._clock() + self.budget
        delay = self._first_delay
        while True:
            try:
                return call()
            except StorageUnavailable as exc:
                self._on_failure(what)
                left = deadline - self._clock()
                if left <= 0:
                    if self.budget <= 0:
                        raise
                    raise StorageUnavailable(
                        f"Object storage stayed unavailable for {self.budget:g} s ({exc.message})",
                        details={**exc.details, "operation": what, "retried_seconds": self.budget},
                    ) from exc
                log.warning("storage %s failed (%s); retrying for %.1f s more", what, exc, left)
                self._sleep(min(delay, left))
                delay = min(delay * 2, self._max_delay)
                rewind()

    def put(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> int:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return self._call("put", lambda: self.inner.put(key, data, content_type))
        start = data.tell()
        return self._call(
            "put", lambda: self.inner.put(key, data, content_type), lambda: data.seek(start)
        )

    def get(self, key: str) -> bytes:
        return self._call("get", lambda: self.inner.get(key))

    def stream(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> Iterator[bytes]:
        """Opening is retried; a failure mid-stream is the caller's."""
        return self._call("stream", lambda: self.inner.stream(key, start, end, chunk_size))

    def stat(self, key: str) -> ObjectInfo:
        return self._call("stat", lambda: self.inner.stat(key))

    def exists(self, key: str) -> bool:
        return self._call("exists", lambda: self.inner.exists(key))

    def delete(self, key: str) -> None:
        self._call("delete", lambda: self.inner.delete(key))

    def delete_prefix(self, prefix: str) -> int:
        return self._call("delete_prefix", lambda: self.inner.delete_prefix(prefix))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The whole listing, read before returning, so a retry restarts it cleanly."""
        return iter(self._call("list", lambda: list(self.inner.list(prefix))))

    def presign_get(
        self, key: str, ttl: int | None = None, filename: str | None = None
    ) -> PresignedUrl:
        return self._call("presign", lambda: self.inner.presign_get(key, ttl, filename))

    def presign_put(
        self, key: str, ttl: int | None = None, content_type: str | None = None
    ) -> PresignedUrl:
        return self._call("presign", lambda: self.inner.presign_put(key, ttl, content_type))

    def ping(self) -> None:
        self._call("ping", self.inner.ping)

    def download_to(self, key: str, path: str | PathLike[str]) -> None:
        self._call("download", lambda: self.inner.download_to(key, path))

    def get_versioned(self, key: str) -> Versioned:
        return self._call("get", lambda: self.inner.get_versioned(key))

    def put_if(
        self, key: str, data: bytes, version: str | None, content_type: str | None = None
    ) -> str | None:
        """Retried like the rest: a retry of a write that did land answers ``None``
        (its own version is gone), so callers re-read to tell that from losing."""
        return self._call("put_if", lambda: self.inner.put_if(key, data, version, content_type))
