"""``LocalBlobStore``: blobs as files under one directory, written atomically and durably."""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from berkas.adapters.durable import SharedSync, fsync_dir, fsync_file
from berkas.core.codes import Code
from berkas.core.errors import (
    FULL_BELOW_BYTES,
    InsufficientStorage,
    InvalidRequest,
    Unavailable,
    is_disk_full,
)
from berkas.core.object_keys import duplicate_key, file_not_found, validate_key

TEMP_DIR = ".tmp"
# Staged documents (core.ports.StagingBlobStore) wait in TEMP_DIR as <file id>.staged.
_STAGED = ".staged"
_STAGING_NAME = re.compile(r"[A-Za-z0-9-]{1,100}")
_FILE_MODE = 0o600
_DIR_MODE = 0o700
_COPY_CHUNK = 1024 * 1024

log = logging.getLogger(__name__)


class LocalBlobStore:
    """Blobs under ``root`` (implements ``core.ports.BlobStore``).

    A write lands in ``root/.tmp`` (same file system), is fsynced, then linked into place
    and its directory fsynced, so a crash leaves either the whole file or nothing at its
    key. Leftovers in ``.tmp`` are removed by ``cleanup_temp`` at start-up; staged
    documents (``stage``, ``publish``) stay for the document store's recovery.

    Directory fsyncs are shared by concurrent writers into one directory (``SharedSync``):
    a batch of uploads pays one, as a batch of rows pays one commit.
    """

    def __init__(self, root: Path, *, create: bool = True) -> None:
        """Open the store at absolute directory ``root``, creating it (mode 0700) when
        ``create``; otherwise a missing root makes every call ``Unavailable``."""
        if not root.is_absolute():
            # A relative root would follow the working directory of whoever starts us.
            raise ValueError(
                f"storage root {str(root)!r} is relative; give an absolute directory "
                "such as /var/lib/berkas/blobs"
            )
        self.root = root
        self._temp = root / TEMP_DIR
        self._syncs = SharedSync()
        try:
            for directory in (root, self._temp):
                if create and not directory.is_dir():
                    directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            self._real_root = root.resolve()
        except OSError as exc:
            raise _unavailable(root, at_start=True) from exc

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at ``path`` under ``key``; durable when this returns.

        ``path`` is moved (not copied) when it is on the same file system. Raises
        ``InvalidRequest`` (``invalid_key``), ``Conflict`` (``duplicate_key``) when the key
        is taken, ``Unavailable`` (``storage_unavailable``) on a disk error. The content
        type is not kept here: the metadata row records it.
        """
        final = self._path(key)
        if final.exists():
            raise duplicate_key(key)
        temp = self._temp / uuid.uuid4().hex
        try:
            self._make_parents(final.parent)
            self._stage(path, temp)
            try:
                # link(2), unlike rename(2), refuses to replace an existing name, atomically:
                # two writers racing for one key cannot overwrite each other.
                os.link(temp, final)
            except FileExistsError:
                raise duplicate_key(key) from None
            self._syncs.sync(final.parent)
        except OSError as exc:
            raise _os_error(self.root, exc) from exc
        finally:
            temp.unlink(missing_ok=True)

    def stage(self, name: str, path: Path) -> None:
        """Make ``path`` durable as ``.tmp/<name>.staged`` (moved when on this file system):
        the file fsynced, then the staging directory (shared with concurrent stagers)."""
        staged = self._staged_path(name)
        try:
            self._stage(path, staged)
            self._syncs.sync(self._temp)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise _os_error(self.root, exc) from exc

    def publish(self, name: str, key: str) -> None:
        """Rename the staged file to ``key`` and make that durable. rename(2) replaces a
        file a crash left at the key: the committed row is the key's one owner."""
        staged = self._staged_path(name)
        final = self._path(key)
        try:
            self._make_parents(final.parent)
            try:
                os.replace(staged, final)
            except FileNotFoundError:
                if staged.exists():
                    raise
                return  # published before (a recovery repeating itself)
            self._syncs.sync(final.parent)
        except OSError as exc:
            raise _os_error(self.root, exc) from exc

    def unstage(self, name: str, path: Path) -> None:
        """Move the staged file back to ``path`` (copied when on another file system)."""
        staged = self._staged_path(name)
        try:
            try:
                os.replace(staged, path)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.copyfile(staged, path)
                staged.unlink()
        except OSError as exc:
            raise _os_error(self.root, exc) from exc

    def drop_staged(self, name: str) -> None:
        try:
            self._staged_path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise _unavailable(self.root, exc) from exc

    def staged(self) -> list[str]:
        try:
            return sorted(
                entry.name.removesuffix(_STAGED)
                for entry in self._temp.iterdir()
                if entry.name.endswith(_STAGED)
                and _STAGING_NAME.fullmatch(entry.name[: -len(_STAGED)])
            )
        except OSError as exc:
            raise _unavailable(self.root, exc) from exc

    def _staged_path(self, name: str) -> Path:
        if not _STAGING_NAME.fullmatch(name):
            raise ValueError(f"a staging name is a file id, not {name[:80]!r}")
        return self._temp / f"{name}{_STAGED}"

    def open(
        self, key: str, chunk_size: int = 65536, *, first_size: int | None = None
    ) -> Iterator[bytes]:
        """Yield the bytes stored under ``key``; ``NotFound`` (``file_not_found``) if absent.

        Absence is checked here, before the first chunk, so callers can answer 404 before
        they start a response.
        """
        _check_sizes(chunk_size, first_size)
        path = self._path(key)
        if not path.is_file():
            raise file_not_found(key)
        return self._chunks(key, path, chunk_size, first_size or chunk_size)

    def path_of(self, key: str) -> Path | None:
        """The file that holds ``key``'s bytes, or None when there is none: a download
        of bytes stored as sent can then be handed to the server by path."""
        path = self._path(key)
        return path if path.is_file() else None

    def delete(self, key: str) -> None:
        """Remove ``key``; an absent key is not an error."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
            if path.parent.is_dir():
                fsync_dir(path.parent)
        except OSError as exc:
            raise _unavailable(self.root, exc) from exc

    def check(self) -> None:
        """Raise ``Unavailable`` unless a file can be created in the store, and
        ``InsufficientStorage`` while its disk is full (for /readyz)."""
        probe = self._temp / f"check-{uuid.uuid4().hex}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
            os.close(fd)
            probe.unlink()
            stats = os.statvfs(self._temp)
        except OSError as exc:
            raise _os_error(self.root, exc) from exc
        # An empty file can still be created on a full disk (it needs an inode, not a
        # block), so the probe alone would report a full store as ready.
        if stats.f_bavail * stats.f_frsize < FULL_BELOW_BYTES:
            raise _full(self.root, logged=False)  # polled: the log would repeat itself

    def cleanup_temp(self) -> int:
        """Remove what interrupted writes left in ``.tmp``; returns how many entries.
        Staged documents stay: whether they are published or dropped depends on their
        row (``DocumentStore.recover_staged``, which runs next).

        Call at start-up, before serving: a running write's temp file would be removed too.
        """
        removed = 0
        try:
            for entry in self._temp.iterdir():
                if entry.name.endswith(_STAGED) and entry.is_file() and not entry.is_symlink():
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
        except OSError as exc:
            raise _unavailable(self.root, exc) from exc
        return removed

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # Belt and braces against symlinks planted under root: the real path must stay
        # inside the real root (CWE-59).
        if not path.resolve().is_relative_to(self._real_root):
            raise InvalidRequest(
                f"storage key {key[:80]!r} resolves outside the storage root.",
                code=Code.INVALID_KEY,
            )
        return path

    def _make_parents(self, directory: Path) -> None:
        # os.makedirs gives intermediate directories the default mode; create each level
        # ourselves with 0700 and make its new name durable in its parent.
        # Never recreate the root itself: if it vanished (an unmounted volume), writing
        # into the bare mount point would hide the outage.
        missing: list[Path] = []
        while not directory.is_dir():
            if directory == self.root:
                raise FileNotFoundError(errno.ENOENT, "storage root is missing", str(directory))
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            try:
                new.mkdir(mode=_DIR_MODE)
            except FileExistsError:
                continue
            fsync_dir(new.parent)

    def _stage(self, source: Path, temp: Path) -> None:
        """Put the complete, fsynced bytes of ``source`` at ``temp``."""
        if os.stat(source).st_dev == os.stat(self._temp).st_dev:
            fsync_file(source)
            try:
                os.replace(source, temp)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
            else:
                os.chmod(temp, _FILE_MODE)
                return
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        with open(source, "rb") as reader, os.fdopen(os.open(temp, flags, _FILE_MODE), "wb") as w:
            shutil.copyfileobj(reader, w, _COPY_CHUNK)
            w.flush()
            os.fsync(w.fileno())

    def _chunks(self, key: str, path: Path, chunk_size: int, first_size: int) -> Iterator[bytes]:
        try:
            # Unbuffered: each read(n) of a regular file is one read(2) of exactly n bytes
            # short of the end, straight into the bytes object yielded (no second copy
            # through a BufferedReader for pieces larger than its 8 KiB buffer anyway).
            with open(path, "rb", buffering=0) as reader:
                size = first_size
                while chunk := reader.read(size):
                    yield chunk
                    size = chunk_size
        except FileNotFoundError as exc:
            raise file_not_found(key) from exc
        except OSError as exc:
            raise _unavailable(self.root, exc) from exc


def _check_sizes(chunk_size: int, first_size: int | None) -> None:
    for name, size in (("chunk_size", chunk_size), ("first_size", first_size)):
        if size is not None and size < 1:
            raise ValueError(f"{name} must be a positive number of bytes, got {size}")


def _os_error(root: Path, exc: OSError) -> Unavailable:
    return _full(root) if is_disk_full(exc) else _unavailable(root, exc)


def _full(root: Path, *, logged: bool = True) -> InsufficientStorage:
    # The path is for the operator's log; the wire names no server path (docs/design.md 2.5).
    if logged:
        log.warning("file storage at %s is full", root)
    return InsufficientStorage(
        "the server's storage is full, so the upload was not stored; try again later.",
        code=Code.INSUFFICIENT_STORAGE,
    )


def _unavailable(root: Path, exc: OSError | None = None, *, at_start: bool = False) -> Unavailable:
    if at_start:  # for the operator starting the server, who needs to know which
        return Unavailable(
            f"File storage at {str(root)!r} cannot be written or read.",
            code=Code.STORAGE_UNAVAILABLE,
        )
    # A request's answer names no server path (docs/design.md 2.5); the log does.
    log.warning("file storage at %s cannot be written or read: %s", root, exc)
    return Unavailable(
        "File storage cannot be written or read; try again later.",
        code=Code.STORAGE_UNAVAILABLE,
    )
