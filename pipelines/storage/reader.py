"""A stored object as a seekable, read-only file, read by ranges.

FFmpeg probes a file by reading its start and seeking (an MP4's index may sit at the
end), so probing an upload needs only those few ranges, not the whole object.
"""

from __future__ import annotations

import io

from pipelines.storage.base import Storage

READ_AHEAD = 256 * 1024
"""Bytes fetched per range request; reads in between come from the buffer."""


class _RangedObject(io.RawIOBase):
    def __init__(self, storage: Storage, key: str, size: int) -> None:
        self._storage, self._key, self._size = storage, key, size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._size or not len(buffer):
            return 0
        end = min(self._pos + len(buffer), self._size) - 1
        filled = 0
        for chunk in self._storage.stream(self._key, self._pos, end):
            buffer[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        self._pos += filled
        return filled


def open_object(storage: Storage, key: str, size: int) -> io.BufferedReader:
    """A buffered, seekable reader of ``key`` (``size`` bytes, from ``stat``)."""
    return io.BufferedReader(_RangedObject(storage, key, size), buffer_size=READ_AHEAD)
