"""``ChangeMarker``: a file in the data dir whose modification time says "the clients
changed", shared by every process that opens the data dir.

``berkas clients disable`` and ``rotate-secret`` run as processes of their own beside the
serving one; they cannot reach its client cache (services/client_cache.py), but they can
touch a file it looks at. A stat is ~1 µs, so the serving node checks it on every client
lookup and a change made through the CLI is refused at its next request, not up to the
cache's 10 s later. Nodes with data dirs of their own (a fleet on PostgreSQL) still see
it within that bound (docs/design.md 2.1).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLIENTS_CHANGED = "clients.changed"


class ChangeMarker:
    """Implements ``core.ports.ChangeSignal`` with one file's mtime (nanoseconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def version(self) -> int:
        """Changes whenever any process called ``notify``; 0 before the first."""
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return 0

    def notify(self) -> None:
        """Move the mtime forward (strictly: a clock step back cannot repeat a value)."""
        previous = self.version()
        if previous == 0:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
        stamp = max(time.time_ns(), previous + 1)
        os.utime(self.path, ns=(stamp, stamp))
