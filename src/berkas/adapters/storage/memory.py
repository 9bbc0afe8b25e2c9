"""``MemoryBlobStore``: blobs in process memory, for unit tests of the use cases.

Same contract as the durable stores (keys, duplicates, NotFound), nothing kept on restart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from berkas.core.object_keys import duplicate_key, file_not_found, validate_key

_READ_CHUNK = 1024 * 1024


class MemoryBlobStore:
    """Blobs in a dict (implements ``core.ports.BlobStore``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blobs: dict[str, bytes] = {}
        self._staged: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store a copy of the file at ``path``; ``Conflict`` (``duplicate_key``) if taken."""
        validate_key(key)
        with self._lock:
            if key in self._blobs:
                raise duplicate_key(key)
        data = _read(path)
        with self._lock:
            if key in self._blobs:
                raise duplicate_key(key)
            self._blobs[key] = data
            self.content_types[key] = content_type

    def stage(self, name: str, path: Path) -> None:
        """Keep a copy of ``path`` under staging ``name`` (core.ports.StagingBlobStore)."""
        data = _read(path)
        with self._lock:
            self._staged[name] = data

    def publish(self, name: str, key: str) -> None:
        validate_key(key)
        with self._lock:
            data = self._staged.pop(name, None)
            if data is not None:
                self._blobs[key] = data

    def unstage(self, name: str, path: Path) -> None:
        with self._lock:
            data = self._staged.pop(name)
        path.write_bytes(data)

    def drop_staged(self, name: str) -> None:
        with self._lock:
            self._staged.pop(name, None)

    def staged(self) -> list[str]:
        with self._lock:
            return sorted(self._staged)

    def open(
        self, key: str, chunk_size: int = 65536, *, first_size: int | None = None
    ) -> Iterator[bytes]:
        """Yield the stored bytes; ``NotFound`` (``file_not_found``) before any chunk."""
        for name, size in (("chunk_size", chunk_size), ("first_size", first_size)):
            if size is not None and size < 1:
                raise ValueError(f"{name} must be a positive number of bytes, got {size}")
        validate_key(key)
        with self._lock:
            data = self._blobs.get(key)
        if data is None:
            raise file_not_found(key)
        return _pieces(data, chunk_size, first_size or chunk_size)

    def delete(self, key: str) -> None:
        """Remove ``key``; an absent key is not an error."""
        validate_key(key)
        with self._lock:
            self._blobs.pop(key, None)
            self.content_types.pop(key, None)

    def check(self) -> None:
        """Always reachable."""


def _read(path: Path) -> bytes:
    parts: list[bytes] = []
    with open(path, "rb") as reader:
        while chunk := reader.read(_READ_CHUNK):
            parts.append(chunk)
    return b"".join(parts)


def _pieces(data: bytes, chunk_size: int, first_size: int) -> Iterator[bytes]:
    if data:
        yield data[:first_size]
    for start in range(first_size, len(data), chunk_size):
        yield data[start : start + chunk_size]
