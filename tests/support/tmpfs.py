"""A small file system of its own for a test (a tmpfs mount), and filling it to the brim.

Mounting needs root (CI runs the tests as root). Elsewhere the test is skipped with the
reason, except under ``CI=true``, where a test that cannot run must fail, not vanish.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(directory: Path, megabytes: int) -> Iterator[Path]:
    """Mount a ``megabytes`` tmpfs at ``directory`` for the block; unmount after."""
    directory.mkdir(parents=True, exist_ok=True)
    completed = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        reason = (
            f"cannot mount a {megabytes} MB tmpfs (needs root and CAP_SYS_ADMIN): "
            f"{completed.stderr.strip() or completed.returncode}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the file system says ENOSPC; return the bytes written.

    Unbuffered writes halving in size down to one byte, so the disk is left with no
    room at all (not merely less than a chunk).
    """
    written = 0
    chunk = 1024 * 1024
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while chunk:
            try:
                written += os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(fd)
    return written
