"""``MemoryAuditLog``: the audit trail in a list."""

from __future__ import annotations

from datetime import datetime

from berkas.adapters.db.memory.tables import _Tables, _utc_or_none
from berkas.core.models import FileEvent


class MemoryAuditLog:
    """The audit trail in a list."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def append(self, event: FileEvent) -> None:
        """Append one event."""
        with self._tables.lock:
            self._tables.append(event)

    def for_file(self, file_id: str) -> list[FileEvent]:
        """Every event of ``file_id``, oldest first."""
        with self._tables.lock:
            return [e for e in self._tables.events if e.file_id == file_id]

    def export(
        self, *, since: datetime | None, client_id: str | None, after_id: int, limit: int
    ) -> list[FileEvent]:
        """One page of events in id order."""
        since = _utc_or_none(since, "since")
        with self._tables.lock:
            chosen = [
                e
                for e in self._tables.events
                if (e.id or 0) > after_id
                and (since is None or e.at >= since)
                and (client_id is None or e.client_id == client_id)
            ]
        return chosen[:limit]
