"""The bytes of uploads and downloads: what a file part may be (a path, bytes, a file
object, a pipe), progress counting as httpx reads it, and the download sink that hashes.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias

import httpx

FileInput: TypeAlias = str | os.PathLike[str] | bytes | IO[bytes]
"""A path (streamed from disk), the bytes themselves, or a binary file object."""


class Sink(Protocol):
    """Where ``download_to`` may stream a body: anything with ``write(bytes)``."""

    def write(self, data: bytes, /) -> object:
        """Take the next chunk."""


OnProgress: TypeAlias = Callable[[int, int | None], object]
"""Called as bytes go out or come in: (bytes so far, total or None when unknown)."""


class Meter:
    """A body sink that also hashes, counts and reports progress."""

    def __init__(
        self, write: Callable[[bytes], object], total: int | None, on_progress: OnProgress | None
    ) -> None:
        self._write = write
        self._total = total
        self._on_progress = on_progress
        self.digest = hashlib.sha256()
        self.received = 0
        if on_progress is not None:
            on_progress(0, total)

    def __call__(self, chunk: bytes) -> None:
        self._write(chunk)
        self.digest.update(chunk)
        self.received += len(chunk)
        if self._on_progress is not None:
            self._on_progress(self.received, self._total)


def content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "")
    # A compressed body's Content-Length counts the wire bytes, not the ones written.
    if not value.isdigit() or response.headers.get("content-encoding", "identity") != "identity":
        return None
    return int(value)


def put(partial: Path, path: Path, *, overwrite: bool) -> None:
    if overwrite:
        partial.replace(path)
        return
    # A hard link fails if ``path`` exists, even one created a moment ago by someone
    # else: no check-then-rename race.
    try:
        os.link(partial, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if path.exists():
            raise FileExistsError(f"{path} exists") from None
        partial.replace(path)


def file_part(
    file: FileInput, filename: str | None, stack: ExitStack
) -> tuple[str, bytes | IO[bytes] | _Stream, bool]:
    """(filename, content, rewindable) for the multipart ``file`` part; never reads it."""
    if isinstance(file, bytes | bytearray | memoryview):
        return filename or "upload", bytes(file), True
    if isinstance(file, str | os.PathLike):
        path = Path(file)
        handle = stack.enter_context(path.open("rb"))
        return filename or path.name, handle, True
    name = filename or Path(str(getattr(file, "name", "") or "upload")).name
    if _is_pipe(file):
        # A pipe or socket: its size is unknown (fstat says 0), so hide fileno and seek
        # from httpx, which then streams it chunked instead of trusting that 0.
        return name, _Stream(file), False
    return name, file, _seekable(file)


def _is_pipe(file: IO[bytes]) -> bool:
    """True for a file descriptor that is not a regular file (pipe, socket, terminal)."""
    try:
        mode = os.fstat(file.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        return False
    return not stat.S_ISREG(mode)


def _seekable(file: IO[bytes]) -> bool:
    seekable = getattr(file, "seekable", None)
    try:
        return bool(seekable()) if callable(seekable) else False
    except (OSError, ValueError):
        return False


class _Stream:
    """Only ``read``: a one-pass stream httpx sends with chunked encoding."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)


class Counted:
    """A file part that reports how much httpx has read of it (``on_progress``).

    Seekable sources keep ``seek``/``tell``/``fileno``, so httpx still sends a
    Content-Length and rewinds on a retry (the count starts again from the position).
    """

    def __init__(self, file: Any, on_progress: OnProgress, total: int | None) -> None:
        self._file = file
        self._on_progress = on_progress
        self._total = total
        self._done = 0

    @classmethod
    def around(cls, content: Any, on_progress: OnProgress) -> Any:
        if isinstance(content, bytes):
            content = io.BytesIO(content)
        if isinstance(content, _Stream) or not hasattr(content, "seek"):
            return cls(content, on_progress, None)
        return _SeekableCounted(content, on_progress, _length(content))

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self._file.read(size)
        self._done += len(chunk)
        self._on_progress(self._done, self._total)
        return chunk


class _SeekableCounted(Counted):
    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position: int = self._file.seek(offset, whence)
        self._done = position
        return position

    def tell(self) -> int:
        return int(self._file.tell())

    def fileno(self) -> int:
        return int(self._file.fileno())


def _length(file: Any) -> int | None:
    try:
        return os.fstat(file.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        pass
    try:
        here = file.tell()
        end = int(file.seek(0, os.SEEK_END))
        file.seek(here)
    except (AttributeError, OSError, ValueError):
        return None
    return end
