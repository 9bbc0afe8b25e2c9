"""``SqlFileRepository``: stored-file rows in ``files`` and the pending-blob intents in
``pending_blobs`` that keep an object and its row in step (docs/design.md 5.5)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    delete,
    exc,
    or_,
    select,
    update,
)

from berkas.adapters.db.engine import truncate_wal
from berkas.adapters.db.repositories.audit import _append_event
from berkas.adapters.db.repositories.base import (
    _NUL,
    DATA_KEY_BINDING,
    _insert_unless_taken,
    _stored_file,
    _utc_or_none,
)
from berkas.adapters.db.repositories.upgrades import _FileUpgrades
from berkas.adapters.db.tables import file_events, files, pending_blobs
from berkas.core.listing import FileFilter, Position
from berkas.core.models import (
    EventKind,
    FileEvent,
    StoredFile,
    duplicate_file,
    file_on_hold,
    require_utc,
    unknown_client,
)

log = logging.getLogger(__name__)


class SqlFileRepository(_FileUpgrades):
    """Stored-file metadata in the ``files`` table."""

    def add(self, stored: StoredFile, event: FileEvent | None = None) -> str | None:
        """Insert one row (and ``event``); ``Conflict`` (``duplicate_id``) when the id or
        key is taken. Returns the earlier file with the same bytes (``duplicate_of``),
        read in the same transaction: one unit, one group commit.

        Raises ``InvalidRequest`` (``unknown_client``) when ``client_id`` is not registered.
        """
        values = {
            "id": stored.id,
            "client_id": stored.client_id,
            "category": stored.category,
            "code": stored.code,
            "key": stored.key,
            "content_type": stored.content_type,
            "size": stored.size,
            "sha256": stored.sha256,
            "width": stored.width,
            "height": stored.height,
            "created_at": require_utc(stored.created_at, "created_at"),
            "retained_until": _utc_or_none(stored.retained_until, "retained_until"),
            "legal_hold": stored.legal_hold,
            "link_generation": stored.link_generation,
            "data_key": stored.data_key,
            "data_key_binding": None if stored.data_key is None else DATA_KEY_BINDING,
            "metadata_removed": ",".join(stored.metadata_removed) or None,
            "metadata_checked": stored.metadata_checked,
        }

        def insert_row(connection: Connection) -> str | None:
            earlier: str | None = connection.execute(
                _FIRST_WITH,
                {"client": stored.client_id, "category": stored.category, "sha": stored.sha256},
            ).scalar_one_or_none()
            try:
                inserted = _insert_unless_taken(connection, files, values)
            except exc.IntegrityError as error:
                # Not a clash of id or key (those are answered, not raised): the client.
                raise unknown_client(stored.client_id) from error
            if not inserted:
                raise duplicate_file(stored)
            connection.execute(_CLEAR_PENDING, {"key": stored.key})
            if event is not None:
                _append_event(connection, event)
            return earlier

        return self._run(insert_row)

    def remove(self, file_id: str, node_id: int, event: FileEvent) -> StoredFile | None:
        """Delete the row, reserve its key for the blob removal, append ``event``; None
        when there is no such row, ``Conflict`` (``file_on_hold``) while it is on hold.

        A removed data key is gone from every file berkas controls before this returns:
        on SQLite (``secure_delete``, engine.py) the freed page is zeroed, and the
        write-ahead log, which still holds the page as the upload wrote it, is
        checkpointed and truncated (crypto-shredding; README "Secrets at rest and the master key").
        """
        if _NUL in file_id:
            return None

        def remove_row(connection: Connection) -> StoredFile | None:
            row = connection.execute(
                delete(files)
                .where(files.c.id == file_id, files.c.legal_hold.is_(False))
                .returning(*files.c)
            ).one_or_none()
            if row is None:
                held = connection.execute(
                    select(files.c.id).where(files.c.id == file_id)
                ).scalar_one_or_none()
                if held is not None:  # on legal hold: nothing deletes it
                    raise file_on_hold(file_id)
                return None
            removed = _stored_file(row)
            _insert_unless_taken(
                connection,
                pending_blobs,
                {"key": removed.key, "node_id": node_id, "created_at": event.at},
            )
            _append_event(connection, event)
            return removed

        removed = self._run(remove_row)
        if removed is not None and removed.data_key is not None:
            self._shred_wal(removed.id)
        return removed

    def _shred_wal(self, file_id: str) -> None:
        try:
            done = truncate_wal(self._engine)
        except exc.DBAPIError as error:
            done = False
            log.warning("checkpoint after deleting %s failed: %s", file_id, error)
        if not done:
            # The delete itself is committed; the next checkpoint (SQLite's automatic
            # one, or the next delete's) drops the old pages.
            log.warning(
                "the write-ahead log still holds the deleted data key of %s until the "
                "next checkpoint: readers kept it from being truncated",
                file_id,
            )

    def revoke_links(
        self, file_id: str, event: FileEvent, *, generation: int, data_key: str | None
    ) -> int | None:
        """Move the link generation from ``generation`` to the next, store ``data_key``
        (rewrapped for it; None: the file has none) and append ``event``. None when the
        file is gone or its generation is no longer ``generation`` (a concurrent revoke)."""
        if _NUL in file_id:
            return None

        def bump(connection: Connection) -> int | None:
            values: dict[str, Any] = {"link_generation": generation + 1}
            if data_key is not None:
                values["data_key"] = data_key
            bumped = connection.execute(
                update(files)
                .where(files.c.id == file_id, files.c.link_generation == generation)
                .values(values)
                .returning(files.c.link_generation)
            ).scalar_one_or_none()
            if bumped is not None:
                _append_event(connection, event)
            return bumped

        return self._run(bump)

    def set_hold(self, file_id: str, hold: bool, event: FileEvent) -> bool:
        """Set or lift the legal hold; False when no such file."""
        if _NUL in file_id:
            return False

        def change(connection: Connection) -> bool:
            result = connection.execute(
                update(files).where(files.c.id == file_id).values(legal_hold=hold)
            )
            if result.rowcount == 0:
                return False
            _append_event(connection, event)
            return True

        return self._run(change)

    def expired(self, now: datetime, limit: int) -> list[StoredFile]:
        """Files whose retention ended by ``now``, not on hold, oldest retention first."""
        with self._read() as connection:
            rows = connection.execute(
                select(files)
                .where(files.c.retained_until <= require_utc(now, "now"))
                .where(files.c.legal_hold.is_(False))
                .order_by(files.c.retained_until, files.c.id)
                .limit(limit)
            ).all()
        return [_stored_file(row) for row in rows]

    def duplicate_of(self, client_id: str, category: str, sha256: str) -> str | None:
        """The first file this client stored in ``category`` with these bytes, or None."""
        with self._read() as connection:
            found: str | None = connection.execute(
                _FIRST_WITH, {"client": client_id, "category": category, "sha": sha256}
            ).scalar_one_or_none()
        return found

    def reserve_key(self, key: str, node_id: int, created_at: datetime) -> None:
        """Record the intent to write ``key`` (idempotent)."""
        values = {
            "key": key,
            "node_id": node_id,
            "created_at": require_utc(created_at, "created_at"),
        }
        # Already reserved: the same intent, recorded once.
        self._run(lambda connection: _insert_unless_taken(connection, pending_blobs, values))

    def release_key(self, key: str) -> None:
        """Forget the intent to write ``key``."""
        with self._write() as connection:
            connection.execute(delete(pending_blobs).where(pending_blobs.c.key == key))

    def reserved_keys(self, node_id: int) -> list[str]:
        """Keys ``node_id`` reserved and never committed or released, oldest first."""
        with self._read() as connection:
            rows = connection.execute(
                select(pending_blobs.c.key)
                .where(pending_blobs.c.node_id == node_id)
                .order_by(pending_blobs.c.created_at)
            ).all()
        return [row.key for row in rows]

    def position_of(self, client_id: str | None, file_id: str) -> Position | None:
        """The row's (created_at, id), else the file's ``uploaded`` event's: one indexed
        lookup in ``files`` (by id, the client in the condition) and, unless it is a live
        file of the client's, one in ``file_events`` (by file id, at most one row), the
        same two for an unknown id and another client's."""
        if _NUL in file_id or (client_id is not None and _NUL in client_id):
            return None
        anyone = client_id is None
        with self._read() as connection:
            row = connection.execute(
                _POSITION, {"id": file_id, "client": client_id, "anyone": anyone}
            ).one_or_none()
            if row is None:
                row = connection.execute(
                    _UPLOADED_AT,
                    {
                        "id": file_id,
                        "kind": EventKind.UPLOADED.value,
                        "client": client_id,
                        "anyone": anyone,
                    },
                ).one_or_none()
        return None if row is None else Position(row[0], file_id)

    def listed(
        self,
        client_id: str | None,
        match: FileFilter,
        *,
        limit: int,
        after: Position | None = None,
        before: Position | None = None,
    ) -> list[StoredFile]:
        """Up to ``limit`` files of ``client_id`` (None: every client's) that ``match``:
        newest first, from just past ``after`` (older than it) or the newest; with
        ``before``, the ones just newer than it, nearest first (docs/design.md 3.5).

        One range over ``ix_files_listing`` (client_id, created_at, id): the order is the
        index's, so a page reads about ``limit`` index entries, however many files the
        client has (the filters on category and code are checked on those rows).
        """
        where: list[ColumnElement[bool]] = []
        if client_id is not None:
            if _NUL in client_id:
                return []
            where.append(files.c.client_id == client_id)
        if match.category is not None:
            where.append(files.c.category == match.category)
        if match.code is not None:
            where.append(files.c.code == match.code)
        if match.created_gte is not None:
            where.append(files.c.created_at >= require_utc(match.created_gte, "created_gte"))
        if match.created_lt is not None:
            where.append(files.c.created_at < require_utc(match.created_lt, "created_lt"))
        if after is not None:
            where.append(_beyond(after, older=True))
        if before is not None:
            where.append(_beyond(before, older=False))
        order = (
            (files.c.created_at.asc(), files.c.id.asc())
            if before is not None
            else (files.c.created_at.desc(), files.c.id.desc())
        )
        with self._read() as connection:
            rows = connection.execute(
                select(files).where(*where).order_by(*order).limit(limit)
            ).all()
        return [_stored_file(row) for row in rows]

    def get(self, file_id: str) -> StoredFile | None:
        """The file with ``file_id``, or None."""
        if _NUL in file_id:
            return None
        with self._read() as connection:
            row = connection.execute(_BY_ID, {"id": file_id}).one_or_none()
        return None if row is None else _stored_file(row)

    def get_by_key(self, key: str) -> StoredFile | None:
        """The file stored under blob ``key``, or None."""
        if _NUL in key:
            return None
        with self._read() as connection:
            row = connection.execute(_BY_KEY, {"key": key}).one_or_none()
        return None if row is None else _stored_file(row)


# The hot statements (a metadata read, a download, an upload's row), built once and given
# their values at execution: building a statement per call costs more than running it.
_BY_ID = select(files).where(files.c.id == bindparam("id"))
_BY_KEY = select(files).where(files.c.key == bindparam("key"))
_CLEAR_PENDING = delete(pending_blobs).where(pending_blobs.c.key == bindparam("key"))
# A list cursor's place (position_of): the caller's row, else its upload's event.
_POSITION = select(files.c.created_at).where(
    files.c.id == bindparam("id"),
    or_(bindparam("anyone"), files.c.client_id == bindparam("client")),
)
_UPLOADED_AT = (
    select(file_events.c.at)
    .where(
        file_events.c.file_id == bindparam("id"),
        file_events.c.kind == bindparam("kind"),
        or_(bindparam("anyone"), file_events.c.client_id == bindparam("client")),
    )
    .limit(1)
)


# The first file of a client in a category whose stored bytes hash to a sha256 (6.7).
_FIRST_WITH = (
    select(files.c.id)
    .where(files.c.client_id == bindparam("client"))
    .where(files.c.category == bindparam("category"))
    .where(files.c.sha256 == bindparam("sha"))
    .order_by(files.c.created_at, files.c.id)
    .limit(1)
)


def _beyond(position: Position, *, older: bool) -> ColumnElement[bool]:
    """Rows strictly past ``position`` in (created_at, id) order: older ones, or newer.
    Spelled without row values, which SQLite and PostgreSQL both plan as an index range."""
    at = require_utc(position.created_at, "cursor")
    if older:
        return or_(
            files.c.created_at < at, and_(files.c.created_at == at, files.c.id < position.id)
        )
    return or_(files.c.created_at > at, and_(files.c.created_at == at, files.c.id > position.id))
