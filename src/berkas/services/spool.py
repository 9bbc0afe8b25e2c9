"""The spool: an upload's bytes counted, capped, hashed and written to a private file.

Both multipart uploads and ``file_url`` fetches write through a ``Spool``, the one counter
of the size cap; nothing holds a whole upload in memory (warehouse's upload loop, as a
small object). ``SpoolWriter`` feeds it from the event loop in batches on a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NoReturn, Self, TypeVar

from anyio import to_thread

from berkas.core.codes import Code
from berkas.core.content import SNIFF_BYTES
from berkas.core.errors import (
    FULL_BELOW_BYTES,
    InsufficientStorage,
    PayloadTooLarge,
    Unavailable,
    is_disk_full,
)

T = TypeVar("T")

_PREFIX = "upload-"
_SUFFIX = ".part"
_MIB = 1024 * 1024
# Disk writes and hashing leave the event loop in batches of about this size: one worker
# thread hop per MiB rather than per network chunk (as Starlette spools form files).
BATCH_BYTES = _MIB


class Spool:
    """An upload's bytes, refused past ``max_bytes``: in a temporary file in the spool
    directory, or, for a spool created with ``memory_bytes``, in memory until they pass
    that many (then in the file, as if they had always been).

    Use ``Spool.create``; as a context manager, an exception inside the block removes
    the file. ``write`` raising ``PayloadTooLarge`` discards the spool first.
    """

    def __init__(
        self,
        fh: BinaryIO | None,
        path: Path | None,
        max_bytes: int,
        label: str,
        *,
        directory: Path | None = None,
        memory_bytes: int = 0,
    ) -> None:
        self._fh: BinaryIO | None = fh
        self._path = path
        self._max_bytes = max_bytes
        self._label = label
        self._size = 0
        self._hash = hashlib.sha256()
        self._head = b""
        self._discarded = False
        self._finished = False
        self._directory = directory
        self._memory_bytes = memory_bytes
        # The bytes while they fit in memory_bytes; None once in the file (or never).
        self._memory: bytearray | None = bytearray() if path is None else None
        self._data: bytes | None = None  # the finished in-memory body

    @classmethod
    def create(cls, directory: Path, max_bytes: int, label: str, *, memory_bytes: int = 0) -> Spool:
        """Open a new ``upload-*.part`` file (mode 0600) in ``directory``; with
        ``memory_bytes``, only once the body grows past that many bytes.

        A small upload kept in memory costs no file at all: no create, write, read back
        and unlink per upload (the bulk of a 50 KB upload's file system work). The bound
        is per upload, so memory stays at most the concurrent-upload cap times
        ``memory_bytes`` however large the bodies are.
        """
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
        if memory_bytes > 0:
            return cls(None, None, max_bytes, label, directory=directory, memory_bytes=memory_bytes)
        fh, path = _open_private(directory)
        return cls(fh, path, max_bytes, label)

    @property
    def path(self) -> Path:
        """The spool file; ``ValueError`` for a spool whose bytes are in memory."""
        if self._path is None:
            raise ValueError("this spool holds its bytes in memory; read them from source")
        return self._path

    @property
    def in_memory(self) -> bool:
        return self._path is None

    @property
    def source(self) -> Path | bytes:
        """What the upload's checks read: the file, or the finished bytes in memory."""
        if self._path is not None:
            return self._path
        if self._data is None:
            raise ValueError("the spool is not finished (or was discarded)")
        return self._data

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the bytes written so far."""
        return self._hash.hexdigest()

    @property
    def head(self) -> bytes:
        """The first ``SNIFF_BYTES`` bytes (fewer if the file is shorter)."""
        return self._head

    @property
    def max_bytes(self) -> int:
        """The cap: no more bytes than this are ever written."""
        return self._max_bytes

    def expect(self, length: int) -> None:
        """Refuse at once a body announced (``Content-Length``) as longer than the cap."""
        if length > self._max_bytes:
            self._refuse()

    def write(self, chunk: bytes) -> None:
        """Append ``chunk``; raise ``PayloadTooLarge`` before the cap would be crossed."""
        self._check_open()
        if not chunk:
            return
        if self._size + len(chunk) > self._max_bytes:
            # Refused before writing: the message states only the cap, never a total we
            # have not read (the rest of the body is never consumed).
            self._refuse()
        memory = self._memory
        if memory is not None and len(memory) + len(chunk) <= self._memory_bytes:
            memory += chunk
        else:
            if memory is not None:
                self._spill(memory)
            fh = self._fh
            assert fh is not None
            try:
                fh.write(chunk)
            except OSError as exc:
                self._fail(exc)
        self._size += len(chunk)
        self._hash.update(chunk)
        if len(self._head) < SNIFF_BYTES:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]

    def _spill(self, memory: bytearray) -> None:
        """Move what is in memory to a new spool file: the body outgrew memory_bytes."""
        assert self._directory is not None
        try:
            self._fh, self._path = _open_private(self._directory)
        except BaseException:
            self.discard()  # as for a failed write: nothing of the upload is kept
            raise
        self._memory = None
        try:
            self._fh.write(memory)
        except OSError as exc:
            self._fail(exc)

    def tighten(self, max_bytes: int, label: str) -> None:
        """Lower the cap (the category became known mid-body); refuse if already over.

        A cap higher than the current one is ignored: the first cap was already the
        most this upload may be.
        """
        if max_bytes > self._max_bytes:
            return
        self._max_bytes = max_bytes
        self._label = label
        if self._size > max_bytes:
            self._refuse()

    def finish(self) -> None:
        """Flush and close the file: ``source`` is complete (not yet durable).

        No fsync here: the spool is scratch space. Durability is the blob store's job
        (it fsyncs what it keeps, or hands it to S3), so an upload that inspection
        refuses costs no disk flush, and a kept one costs one, not two.
        """
        self._check_open()
        self._finished = True
        if self._memory is not None:
            self._data = bytes(self._memory)
            self._memory = None
            return
        fh = self._fh
        assert fh is not None
        try:
            # Buffered bytes reach the disk here, so a full disk may only show now.
            fh.flush()
        except OSError as exc:
            self._fail(exc)
        fh.close()
        self._fh = None

    def discard(self) -> None:
        """Close and delete the file (or drop the bytes); safe to repeat, and after the
        file was moved."""
        self._discarded = True
        self._memory = None
        self._data = None
        fh, self._fh = self._fh, None
        if fh is not None:
            # Closing flushes what is buffered, which fails on a full disk; the descriptor
            # is closed all the same (io.BufferedWriter.close), and the file must go.
            with contextlib.suppress(OSError):
                fh.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
        elif self._fh is not None:
            # Left without finish(): release the descriptor, keep the file as written.
            self._fh.close()
            self._fh = None
            self._finished = True

    def _check_open(self) -> None:
        if self._discarded or self._finished:
            state = "discarded" if self._discarded else "finished"
            name = self._path.name if self._path is not None else "in memory"
            raise ValueError(f"spool {name} is already {state}")

    def _fail(self, exc: OSError) -> NoReturn:
        # Nothing partial stays behind: the spool goes, whatever the write error was.
        self.discard()
        if is_disk_full(exc):
            raise disk_full() from exc
        raise exc

    def _refuse(self) -> None:
        cap = _megabytes(self._max_bytes)
        self.discard()
        raise PayloadTooLarge(
            f"file is larger than {cap}; {self._label} accepts at most {cap}.",
            code=Code.FILE_TOO_LARGE,
        )


def _private(directory: Path) -> tuple[int, str]:
    """A new empty ``upload-*.part`` file: its descriptor and name."""
    # mkstemp opens with O_EXCL and mode 0600: the name cannot be pre-planted (a
    # symlink to elsewhere) and no other local user can read a KYC document.
    try:
        return tempfile.mkstemp(prefix=_PREFIX, suffix=_SUFFIX, dir=directory)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full() from exc
        raise


def _open_private(directory: Path) -> tuple[BinaryIO, Path]:
    """A new ``upload-*.part`` file, open for writing."""
    fd, name = _private(directory)
    try:
        return os.fdopen(fd, "wb"), Path(name)
    except BaseException:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise


class SpoolWriter:
    """Feeds a ``Spool`` from async code: the cap is checked as each chunk arrives, the
    write and hash run on a worker thread once a batch has gathered (``flush`` sends the
    rest). Implements the fetcher's sink (``core.ports.FetchSink``)."""

    def __init__(self, spool: Spool, batch_bytes: int = BATCH_BYTES) -> None:
        self._spool = spool
        self._batch = bytearray()
        self._batch_bytes = batch_bytes

    def expect(self, length: int) -> None:
        self._spool.expect(length)

    async def write(self, chunk: bytes) -> None:
        # Checked here, on the loop, so an oversize body is refused at the chunk that
        # crosses the cap rather than a batch later.
        self._spool.expect(self._spool.size + len(self._batch) + len(chunk))
        self._batch += chunk
        if len(self._batch) >= self._batch_bytes:
            await self.flush()

    async def flush(self) -> None:
        if self._batch:
            batch, self._batch = bytes(self._batch), bytearray()
            await to_thread.run_sync(self._spool.write, batch)


def scratch(directory: Path) -> Path:
    """A new empty private file (0600) in the spool directory for what an upload derives
    from its spool (the stripped copy, the encrypted one); the caller removes it. Named
    like a spool, so a crash's leftovers go with ``cleanup_stale``."""
    fd, name = _private(directory)
    os.close(fd)
    return Path(name)


def derive(directory: Path, derived: list[Path], write: Callable[[Path], T]) -> tuple[Path, T]:
    """A ``scratch`` file in ``directory`` that ``write`` fills, listed in ``derived`` for
    the caller to remove; a full disk is a 507, as for the spool itself."""
    dst = scratch(directory)
    derived.append(dst)
    try:
        return dst, write(dst)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full() from exc
        raise


def disk_full() -> InsufficientStorage:
    """The refusal of an upload the disk has no room for (no path: docs/design.md 2.5)."""
    return InsufficientStorage(
        "the server's storage is full, so the upload was not stored; try again later.",
        code=Code.INSUFFICIENT_STORAGE,
    )


def check_free_space(directory: Path, min_free: int = FULL_BELOW_BYTES) -> None:
    """Raise ``InsufficientStorage`` when ``directory``'s file system has less than
    ``min_free`` bytes left for us (for /readyz: the spool of every upload is there)."""
    try:
        stats = os.statvfs(directory)
    except OSError as exc:
        raise Unavailable(
            "the upload spool cannot be read; try again later.", code=Code.STORAGE_UNAVAILABLE
        ) from exc
    if stats.f_bavail * stats.f_frsize < min_free:
        raise disk_full()


def cleanup_stale(directory: Path) -> int:
    """Delete ``upload-*.part`` files a crash left in ``directory``; return how many.

    Call at start-up, before serving: the spool directory is this node's own (nodes
    share only the database and the object store, docs/design.md 5.6), so nothing else is writing.
    """
    removed = 0
    if not directory.is_dir():
        return removed
    for path in directory.glob(f"{_PREFIX}*{_SUFFIX}"):
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _megabytes(n: int) -> str:
    # DOKU states max_size in megabytes; print whole numbers the way the requirement
    # said them (binary or decimal MB), anything else to one decimal place.
    for unit in (_MIB, 1_000_000):
        if n >= unit and n % unit == 0:
            return f"{n // unit} MB"
    if n >= 100_000:
        return f"{n / _MIB:.1f} MB"
    return f"{n} bytes"
