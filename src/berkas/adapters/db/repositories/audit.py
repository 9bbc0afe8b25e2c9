"""``SqlAuditLog``: the append-only audit trail in ``file_events`` (docs/design.md 6.3),
and the one insert of an event that every repository recording one uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select

from berkas.adapters.db.repositories.base import _NUL, _SqlRepository
from berkas.adapters.db.tables import file_events
from berkas.core.models import EventKind, FileEvent, require_utc

# One statement object for every event, given its values at execution (building it per
# event was most of an event's write: base._unless_taken says how much).
_INSERT_EVENT = insert(file_events)


def _append_event(connection: Connection, event: FileEvent) -> None:
    connection.execute(
        _INSERT_EVENT,
        {
            "file_id": event.file_id,
            "client_id": event.client_id,
            "kind": event.kind.value,
            "at": require_utc(event.at, "at"),
            "ip": event.ip,
            # Caller text: bounded to the column so a long header cannot fail the action.
            "user_agent": None if event.user_agent is None else event.user_agent[:512],
            "detail": event.detail,
            "request_id": None if event.request_id is None else event.request_id[:128],
            "actor": None if event.actor is None else event.actor[:255],
        },
    )


def _event(row: Row[Any]) -> FileEvent:
    return FileEvent(
        id=row.id,
        file_id=row.file_id,
        client_id=row.client_id,
        kind=EventKind(row.kind),
        at=row.at,
        ip=row.ip,
        user_agent=row.user_agent,
        detail=row.detail,
        request_id=row.request_id,
        actor=row.actor,
    )


class SqlAuditLog(_SqlRepository):
    """The audit trail in the append-only ``file_events`` table."""

    def append(self, event: FileEvent) -> None:
        """Write one event; committed (group commit on SQLite) before returning."""
        self._run(lambda connection: _append_event(connection, event), one_statement=True)

    def for_file(self, file_id: str) -> list[FileEvent]:
        """Every event of ``file_id``, oldest first."""
        if _NUL in file_id:
            return []
        with self._read() as connection:
            rows = connection.execute(
                select(file_events)
                .where(file_events.c.file_id == file_id)
                .order_by(file_events.c.id)
            ).all()
        return [_event(row) for row in rows]

    def export(
        self, *, since: datetime | None, client_id: str | None, after_id: int, limit: int
    ) -> list[FileEvent]:
        """One page of events in id order."""
        query = select(file_events).where(file_events.c.id > after_id)
        if since is not None:
            query = query.where(file_events.c.at >= require_utc(since, "since"))
        if client_id is not None:
            if _NUL in client_id:
                return []
            query = query.where(file_events.c.client_id == client_id)
        with self._read() as connection:
            rows = connection.execute(query.order_by(file_events.c.id).limit(limit)).all()
        return [_event(row) for row in rows]
