"""The clients' change marker: a file's mtime every process on a data dir can move."""

from __future__ import annotations

import stat
from pathlib import Path

from berkas.adapters.change_marker import ChangeMarker


def test_every_notify_moves_the_version_and_the_file_is_private(tmp_path: Path) -> None:
    marker = ChangeMarker(tmp_path / "clients.changed")
    assert marker.version() == 0  # never notified

    seen = set()
    for _ in range(50):  # faster than any mtime tick: still a new value each time
        marker.notify()
        seen.add(marker.version())

    assert len(seen) == 50
    assert stat.S_IMODE(marker.path.stat().st_mode) == 0o600
    # Another process's handle on the same file sees the same versions.
    assert ChangeMarker(marker.path).version() == marker.version()
