"""The data dir's one-server lock: an exclusive ``flock`` on ``<data dir>/serve.pid``.

The holder writes its pid into the file, so a second ``berkas serve`` can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

PID_FILE = "serve.pid"
# How long a refused server waits for the holder to write its pid (it locks, then writes).
_PID_WAIT_SECONDS = 2.0


class DataDirInUse(Exception):
    """Another process holds the serve lock on this data dir."""

    def __init__(self, pid: int | None, data_dir: Path) -> None:
        self.pid = pid
        self.data_dir = data_dir
        who = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"another berkas serve ({who}) is using {data_dir}")


class DataDirLock:
    """The held lock; released by ``close`` or when the process exits (the kernel drops it)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    def fileno(self) -> int:
        """The locked descriptor: a worker process handed it keeps the lock held while
        it lives (flock belongs to the open file description, shared with the child)."""
        if self._fd is None:
            raise ValueError("the data-dir lock is released")
        return self._fd

    def close(self) -> None:
        # The pid file is left in place: unlinking it would race with a server starting
        # now, which could lock the old (unlinked) inode while a third locks a new file,
        # and two servers would then share the data dir. A stale pid in an unlocked file
        # means nothing; only the lock counts.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def lock(data_dir: Path) -> DataDirLock:
    """Take the serve lock on ``data_dir`` (which must exist) without waiting.

    Raises ``DataDirInUse`` naming the holder's pid when another process has it. Only
    the pid file is opened (created if missing, 0600); nothing else in the dir is touched.
    """
    path = data_dir / PID_FILE
    # flock, not fcntl/lockf: a POSIX record lock is dropped when *any* descriptor of the
    # file is closed by this process, and is invisible between descriptors of one process;
    # flock belongs to the open file description and lasts as long as this descriptor.
    # The descriptor is not inherited by children (PEP 446), so a child cannot keep the
    # lock after we exit. O_NOFOLLOW: a symlink planted in the data dir must not make us
    # write our pid into some other file.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder_pid(fd)
        os.close(fd)
        raise DataDirInUse(pid, data_dir) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        # Write first, then cut: a reader sees the old pid or the new one, never an empty
        # file (except on the very first start, which _holder_pid waits out).
        data = f"{os.getpid()}\n".encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    except BaseException:
        os.close(fd)
        raise
    return DataDirLock(fd, path)


def _holder_pid(fd: int) -> int | None:
    deadline = time.monotonic() + _PID_WAIT_SECONDS
    while True:
        with contextlib.suppress(ValueError):
            return int(os.pread(fd, 32, 0).decode("ascii", "replace").strip())
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
