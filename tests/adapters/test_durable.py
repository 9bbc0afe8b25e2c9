"""``SharedSync``: one directory fsync for every writer waiting at the same moment."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from berkas.adapters import durable
from berkas.adapters.durable import SharedSync


def test_concurrent_writers_share_syncs_and_none_returns_before_one_that_covers_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = threading.Lock()
    ticks = iter(range(1_000_000))
    starts: list[int] = []  # when each fsync began, on a shared tick counter
    ends: list[int] = []

    def tick() -> int:
        with clock:
            return next(ticks)

    def slow_fsync(directory: Path) -> None:
        starts.append(tick())
        time.sleep(0.02)  # a disk flush: long enough for writers to pile up behind it
        ends.append(tick())

    monkeypatch.setattr(durable, "fsync_dir", slow_fsync)
    syncs = SharedSync()
    covered: list[tuple[int, int]] = []  # (the writer's change, when it returned)

    def writer() -> None:
        changed = tick()  # the rename this writer needs made durable
        syncs.sync(tmp_path)
        covered.append((changed, tick()))

    threads = [threading.Thread(target=writer) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(covered) == 24
    assert len(starts) < 24  # shared: fewer flushes than writers
    for changed, returned in covered:
        # Some flush began after this writer's change and ended before it returned.
        assert any(
            changed < start and end < returned for start, end in zip(starts, ends, strict=True)
        )
    assert syncs._states == {}  # idle directories are forgotten


def test_a_failed_sync_raises_in_its_caller_and_the_next_caller_syncs_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def failing_once(directory: Path) -> None:
        calls.append(directory)
        if len(calls) == 1:
            raise OSError(5, "I/O error")

    monkeypatch.setattr(durable, "fsync_dir", failing_once)
    syncs = SharedSync()

    with pytest.raises(OSError, match="I/O error"):
        syncs.sync(tmp_path)
    syncs.sync(tmp_path)

    assert calls == [tmp_path, tmp_path]
