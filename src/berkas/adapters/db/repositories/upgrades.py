"""What ``berkas files upgrade`` does to the ``files`` table (README "Upgrading"): the
backlog counts, retention stamping, the pages of outdated files and the conditional swap."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Interval,
    String,
    and_,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from berkas.adapters.db.repositories.audit import _append_event
from berkas.adapters.db.repositories.base import (
    _NUL,
    DATA_KEY_BINDING,
    _insert_unless_taken,
    _SqlRepository,
    _stored_file,
)
from berkas.adapters.db.tables import UtcDateTime, file_events, files, pending_blobs
from berkas.core.models import EventKind, FileEvent, StoredFile, UpgradeBacklog, require_utc


class _FileUpgrades(_SqlRepository):
    """The upgrade half of ``SqlFileRepository`` (its base class): ``berkas files
    upgrade`` and the counts ``berkas secrets status`` shows."""

    def backlog(self) -> UpgradeBacklog:
        """Files stored in clear, never checked for metadata, without retention by category."""
        with self._read() as connection:
            in_clear, unchecked, both = connection.execute(
                select(
                    func.count().filter(files.c.data_key.is_(None)),
                    func.count().filter(files.c.metadata_checked.is_(False)),
                    func.count().filter(
                        files.c.data_key.is_(None), files.c.metadata_checked.is_(False)
                    ),
                )
            ).one()
            rows = connection.execute(
                select(files.c.category, func.count())
                .where(files.c.retained_until.is_(None))
                .group_by(files.c.category)
            ).all()
        return UpgradeBacklog(in_clear, unchecked, {row[0]: row[1] for row in rows}, both)

    def stamp_retention(
        self, category: str, span: timedelta, at: datetime, actor: str | None = None
    ) -> int:
        """``retained_until = created_at + span`` where it is NULL, one UPDATE, and an
        ``upgraded`` event (naming ``actor``) for each of those files, one INSERT ...
        SELECT."""
        seconds = _whole_seconds(span)
        due = and_(files.c.category == category, files.c.retained_until.is_(None))
        events = select(
            files.c.id,
            files.c.client_id,
            literal(EventKind.UPGRADED.value),
            literal(require_utc(at, "at"), UtcDateTime()),
            literal(f"retention stamped: {_span_text(span)} from upload"),
            literal(actor, String()),
        ).where(due)

        def stamp(connection: Connection) -> int:
            connection.execute(
                insert(file_events).from_select(
                    ["file_id", "client_id", "kind", "at", "detail", "actor"], events
                )
            )
            result = connection.execute(
                update(files)
                .where(due)
                .values(retained_until=_plus_seconds(connection, files.c.created_at, seconds))
            )
            return result.rowcount

        return self._run(stamp)

    def outdated(
        self, *, after: str, limit: int, in_clear: bool, unchecked: bool
    ) -> list[StoredFile]:
        """A page, in id order, of files in clear and/or not checked for metadata."""
        wanted = []
        if in_clear:
            wanted.append(files.c.data_key.is_(None))
        if unchecked:
            wanted.append(files.c.metadata_checked.is_(False))
        if not wanted or _NUL in after:
            return []
        with self._read() as connection:
            rows = connection.execute(
                select(files)
                .where(files.c.id > after, or_(*wanted))
                .order_by(files.c.id)
                .limit(limit)
            ).all()
        return [_stored_file(row) for row in rows]

    def upgrade(
        self, stored: StoredFile, upgraded: StoredFile, node_id: int, event: FileEvent
    ) -> bool:
        """The conditional swap of ``berkas files upgrade`` (``FileRepository.upgrade``)."""
        moved = upgraded.key != stored.key

        def swap(connection: Connection) -> bool:
            result = connection.execute(
                update(files)
                .where(
                    files.c.id == stored.id,
                    files.c.key == stored.key,
                    files.c.link_generation == stored.link_generation,
                )
                .values(
                    key=upgraded.key,
                    data_key=upgraded.data_key,
                    data_key_binding=None if upgraded.data_key is None else DATA_KEY_BINDING,
                    size=upgraded.size,
                    sha256=upgraded.sha256,
                    width=upgraded.width,
                    height=upgraded.height,
                    metadata_removed=",".join(upgraded.metadata_removed) or None,
                    metadata_checked=upgraded.metadata_checked,
                )
            )
            if result.rowcount == 0:
                return False  # deleted, revoked or upgraded by someone else meanwhile
            if moved:
                released = connection.execute(
                    delete(pending_blobs).where(pending_blobs.c.key == upgraded.key)
                )
                if released.rowcount == 0:
                    # Its reservation is gone, so its object may be too (a recovery took
                    # it): the row must not point there. Undo the update above.
                    raise _Unreserved
                _insert_unless_taken(
                    connection,
                    pending_blobs,
                    {"key": stored.key, "node_id": node_id, "created_at": event.at},
                )
            _append_event(connection, event)
            return True

        try:
            return self._run(swap)
        except _Unreserved:
            return False


class _Unreserved(Exception):
    """Rolls back an upgrade whose new object lost its reservation."""


def _span_text(span: timedelta) -> str:
    return f"{span.days} days" if span == timedelta(days=span.days) else f"{span} (h:mm:ss)"


def _whole_seconds(span: timedelta) -> int:
    if span.microseconds or span < timedelta(0):
        raise ValueError(f"a retention span is a whole, non-negative number of seconds, got {span}")
    return int(span.total_seconds())


def _plus_seconds(connection: Connection, column: Column[Any], seconds: int) -> ColumnElement[Any]:
    """``column + seconds`` in SQL, exact on both backends."""
    if connection.dialect.name == "postgresql":
        # An interval of seconds alone: adding days would follow the session's time zone
        # across a daylight-saving change (https://www.postgresql.org/docs/current/
        # functions-datetime.html, "timestamp with time zone + interval").
        return column + func.make_interval(0, 0, 0, 0, 0, 0, seconds, type_=Interval())
    # SQLite keeps UtcDateTime as naive UTC text, "YYYY-MM-DD HH:MM:SS.ffffff": the date
    # function adds the seconds (https://www.sqlite.org/lang_datefunc.html, modifier
    # "NNN seconds"), the fraction is carried over as it is, so the text compares as
    # every other stored time does.
    return func.strftime("%Y-%m-%d %H:%M:%S", column, f"+{seconds} seconds").concat(
        func.substr(column, 20)
    )
