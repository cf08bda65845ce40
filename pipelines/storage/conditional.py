"""Compare-and-swap writes: what job leases are built on.

``put_if(key, data, version)`` writes only when the object is still at ``version``
(``None``: only when it does not exist yet) and returns the new version, else
``None``. Of several writers racing from the same version exactly one wins.

- ``s3``: ``PutObject`` with ``If-None-Match: *`` / ``If-Match: <ETag>`` (AWS S3,
  MinIO, R2 and SeaweedFS honour both; the version is the ETag).
- ``local``: an exclusive ``flock`` on ``{root}/.conditional.lock`` around
  read-compare-write (the version is the MD5 of the content, like an S3 ETag).
  It holds between processes of one machine; on a shared network volume only
  where the file system implements ``flock`` across clients.

Versions are opaque strings; writers must make every write's content unique (a
token, a timestamp), because equal content has an equal version.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, cast, runtime_checkable


class Versioned(NamedTuple):
    """An object's content and the version a conditional write must name to replace it."""

    data: bytes
    version: str


@runtime_checkable
class ConditionalStorage(Protocol):
    """A storage backend that can write conditionally."""

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


def conditional(storage: object) -> ConditionalStorage:
    """``storage`` as a ``ConditionalStorage``; ``TypeError`` if it cannot write conditionally.

    Checked by attribute, so wrappers that forward unknown attributes qualify too.
    """
    if not all(callable(getattr(storage, name, None)) for name in ("put_if", "get_versioned")):
        raise TypeError(f"{type(storage).__name__} cannot write conditionally")
    return cast(ConditionalStorage, storage)
