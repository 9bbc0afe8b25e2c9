"""Durable file-system writes shared by the adapters: fsync a file or directory, and
write a small private file atomically."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename or link in ``directory`` durable.

    A rename is durable only once its directory is fsynced (POSIX fsync(2); see also
    https://lwn.net/Articles/457667/).
    """
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600: temporary name, fsync, rename, fsync dir.

    A crash leaves the old file or the new one, never a torn one; 0600 from creation, so
    a secret is never readable by others, not even for a moment. With ``exclusive`` an
    existing ``path`` is kept and ``FileExistsError`` raised (first writer wins).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        if exclusive:
            os.link(tmp, path)  # fails if another process got there first
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


class SharedSync:
    """fsync of a directory shared by every caller waiting for one at the same moment.

    A name linked or renamed into a directory is durable once that directory is fsynced
    after the change (POSIX fsync(2)). Concurrent uploads into one directory need not
    each pay a sync of their own: a sync that *starts* after a caller's change covers it,
    so a caller that finds a sync running waits for it to end, then for one more (which
    starts after its change), and callers that arrive meanwhile all share that one: the
    group commit of a database log, applied to directory entries. Nobody returns before a
    sync that began after their change has completed; a failed sync raises in the caller
    that ran it, and the others run their own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[Path, _SyncState] = {}

    def sync(self, directory: Path) -> None:
        with self._lock:
            state = self._states.get(directory)
            if state is None:
                state = self._states[directory] = _SyncState()
            state.users += 1
        try:
            state.sync(directory)
        finally:
            with self._lock:
                state.users -= 1
                if not state.users:
                    # Idle: forgotten, so a store with many directories keeps no table.
                    del self._states[directory]


class _SyncState:
    __slots__ = ("changed", "cond", "running", "synced", "users")

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.changed = 0  # callers' changes, numbered
        self.synced = 0  # every change numbered up to this one is durable
        self.running = False
        self.users = 0

    def sync(self, directory: Path) -> None:
        with self.cond:
            self.changed += 1
            mine = self.changed
            while self.synced < mine:
                if self.running:
                    self.cond.wait()
                    continue
                self.running = True
                covers = self.changed  # every change made before this sync starts
                self.cond.release()
                try:
                    fsync_dir(directory)
                finally:
                    self.cond.acquire()
                    self.running = False
                    self.cond.notify_all()
                self.synced = max(self.synced, covers)
