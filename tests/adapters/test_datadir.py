"""The one-server lock on a data dir: exclusive, naming its holder, released with the process."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from berkas.adapters import datadir
from berkas.adapters.datadir import PID_FILE, DataDirInUse, lock


def test_the_holder_writes_its_pid_and_a_second_taker_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    with lock(tmp_path):
        pid_file = tmp_path / PID_FILE
        assert pid_file.read_text() == f"{os.getpid()}\n"
        assert stat.S_IMODE(pid_file.stat().st_mode) == 0o600
        # flock belongs to the open file description: a second open, even in this
        # process, is refused like another process would be.
        with pytest.raises(DataDirInUse) as refused:
            lock(tmp_path)
        assert refused.value.pid == os.getpid()
        assert str(refused.value) == f"another berkas serve (pid {os.getpid()}) is using {tmp_path}"
    with lock(tmp_path):  # released by close
        pass


def test_a_stale_pid_from_an_earlier_run_is_replaced(tmp_path: Path) -> None:
    (tmp_path / PID_FILE).write_text("123456789012\n")  # longer than ours: cut, not mixed

    with lock(tmp_path):
        assert (tmp_path / PID_FILE).read_text() == f"{os.getpid()}\n"


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from berkas.adapters.datadir import lock\n"
            "held = lock(Path(sys.argv[1]))\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(DataDirInUse) as refused:
            lock(tmp_path)
        assert refused.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # A kill -9 leaves the pid file behind but not the lock: the next server starts.
    with lock(tmp_path):
        assert (tmp_path / PID_FILE).read_text() == f"{os.getpid()}\n"


def test_a_holder_that_has_not_written_its_pid_yet_is_waited_for_then_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datadir, "_PID_WAIT_SECONDS", 0.1)
    fd = os.open(tmp_path / PID_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, pid not yet written
        with pytest.raises(DataDirInUse, match=r"another berkas serve \(pid unknown\)"):
            lock(tmp_path)
    finally:
        os.close(fd)


def test_a_symlink_in_place_of_the_pid_file_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not ours\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / PID_FILE).symlink_to(elsewhere)

    with pytest.raises(OSError, match=r"serve\.pid"):
        lock(data)
    assert elsewhere.read_text() == "not ours\n"
