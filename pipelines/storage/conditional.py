"""Compare-and-swap writes, which every ``Storage`` offers: what job leases are built on.

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

from typing import NamedTuple


class Versioned(NamedTuple):
    """An object's content and the version a conditional write must name to replace it."""

    data: bytes
    version: str
