"""The SQL repositories (clients, files, replay records, leases, keys, secrets) over one
SQLAlchemy engine.

Vendor exceptions stop here: lost connections become ``Unavailable``, key clashes
``Conflict``. Secrets (client secret keys, signing keys, the link secret) are sealed
under the master key on the way in and opened on the way out (adapters/sealing.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Interval,
    Row,
    Select,
    String,
    Table,
    and_,
    delete,
    exc,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from berkas.adapters.db.engine import compact, read_options, truncate_wal
from berkas.adapters.db.tables import (
    UtcDateTime,
    clients,
    file_events,
    files,
    legacy_clear_secrets,
    master_keys,
    node_leases,
    pending_blobs,
    replays,
    service_secrets,
    signing_keys,
    task_leases,
)
from berkas.adapters.db.writes import DirectWrites, Writes, unavailable
from berkas.adapters.keys import StoredKey
from berkas.adapters.sealing import (
    PREFIX,
    Sealer,
    SealingError,
    clear_value_message,
    client_context,
    data_key_context,
    is_sealed,
    key_context,
    legacy_data_key_context,
    previous_client_context,
    replay_context,
    sealed_kid,
    secret_context,
)
from berkas.core.codes import Code
from berkas.core.errors import Unavailable
from berkas.core.models import (
    UPLOAD_REPLAY_PREFIX,
    Client,
    DataKeyBinding,
    EventKind,
    FileEvent,
    NodeLease,
    ReplayRecord,
    StoredFile,
    UpgradeBacklog,
    client_exists,
    duplicate_file,
    file_on_hold,
    require_utc,
    unknown_client,
)

# begin() re-reads after losing the insert race; if the winner released the reservation
# in between, the insert is tried again (bounded: each round means real progress elsewhere).
_BEGIN_ATTEMPTS = 5
# PostgreSQL text cannot hold NUL, so no row anywhere does; psycopg refuses to even send
# a parameter carrying one (DataError). A lookup of such text finds nothing, on every
# backend alike, instead of failing: ids and keys in lookups are caller text.
_NUL = "\x00"
log = logging.getLogger(__name__)
# ``files.data_key_binding`` of a data key sealed with ``sealing.data_key_context`` (id,
# owner, object key, link generation); NULL marks one sealed to the id alone (0007).
DATA_KEY_BINDING = 2


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver failures into ``Unavailable(code=Code.DATABASE_UNAVAILABLE)``, or
    ``InsufficientStorage`` when the database's disk is full.

    Covers a server that is down or unreachable, a dropped connection, a locked SQLite
    file past its busy timeout, an exhausted connection pool and a full disk: all safe to
    retry later.
    """
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        raise unavailable(error) from error


T = TypeVar("T")


def _insert_unless_taken(connection: Connection, table: Table, values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: False when a unique constraint already holds
    such a row (nothing written), True when inserted. Other violations (a foreign key)
    still raise ``IntegrityError``.

    A clash is an answer, not an error, so the transaction goes on without the SAVEPOINT
    and RELEASE that PostgreSQL would otherwise need around the statement (it aborts the
    whole transaction on an error): two round trips fewer per write. Both backends take
    the clause (https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT,
    https://www.sqlite.org/lang_upsert.html). Under READ COMMITTED a clash with a row
    another transaction has not yet committed waits for it, as the unique index did.
    """
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: psycopg reports -1 for this statement.
    statement = dialect_insert(table).values(values).on_conflict_do_nothing()
    returned = connection.execute(statement.returning(*table.primary_key.columns)).first()
    return returned is not None


class _SqlRepository:
    def __init__(self, engine: Engine, writes: Writes | None = None) -> None:
        self._engine = engine
        # Shared by the repositories of one database (SqlDatabase): on SQLite a group
        # commit, else a transaction per call.
        self._writes = writes if writes is not None else DirectWrites(engine)
        # Reads are single statements, run outside a transaction (engine.read_options):
        # two round trips fewer per read.
        self._reader = engine.execution_options(**read_options(engine))

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with translate_errors(), self._writes.transaction() as connection:
            yield connection

    def _run(self, work: Callable[[Connection], T]) -> T:
        """``work`` in a write transaction (``Writes.run``): the cheaper form of
        ``_write`` for a hot write whose statements need no caller state in between."""
        with translate_errors():
            return self._writes.run(work)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with translate_errors(), self._reader.connect() as connection:
            yield connection


class _Sealed:
    """Holds the master-key sealer of the repositories that store secrets."""

    def __init__(self, sealer: Sealer | None) -> None:
        self._sealer = sealer

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            # A programming error: wiring always passes the master key when it builds the
            # repositories a server or admin verb uses.
            raise RuntimeError("this database was opened without the master key")
        return self._sealer


class SqlClientRepository(_SqlRepository, _Sealed):
    """Partner clients in the ``clients`` table, their secret keys sealed."""

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    def add(self, client: Client) -> None:
        """Insert; raises ``Conflict`` (code ``client_exists``) on a duplicate id."""
        values = {
            "client_id": client.client_id,
            "secret_key": self.sealer.seal(
                client.secret_key.encode(), client_context(client.client_id)
            ),
            "enabled": client.enabled,
            "created_at": require_utc(client.created_at, "created_at"),
            "label": client.label,
            "secret_rotated_at": _utc_or_none(client.secret_rotated_at, "secret_rotated_at"),
            "previous_secret_key": (
                None
                if client.previous_secret_key is None
                else self.sealer.seal(
                    client.previous_secret_key.encode(), previous_client_context(client.client_id)
                )
            ),
            "previous_expires_at": _utc_or_none(client.previous_expires_at, "previous_expires_at"),
            "token_generation": client.token_generation,
        }
        try:
            with self._write() as connection:
                connection.execute(insert(clients).values(values))
        except exc.IntegrityError as error:
            raise client_exists(client.client_id) from error

    def get(self, client_id: str) -> Client | None:
        """The client with ``client_id``, or None."""
        if _NUL in client_id:
            return None
        with self._read() as connection:
            row = connection.execute(
                select(clients).where(clients.c.client_id == client_id)
            ).one_or_none()
        return None if row is None else self._client(row)

    def list(self) -> list[Client]:
        """Every client, oldest first."""
        with self._read() as connection:
            rows = connection.execute(
                select(clients).order_by(clients.c.created_at, clients.c.client_id)
            ).all()
        return [self._client(row) for row in rows]

    def _client(self, row: Row[Any]) -> Client:
        if not is_sealed(row.secret_key):
            # berkas seals every secret it writes, so a clear one was written around the
            # master key (or by a release before sealing, which `berkas secrets
            # seal-legacy` seals once): refused, or whoever can write one row could choose
            # a partner's secret. Nothing ever seals it automatically.
            raise SealingError(clear_value_message("clients.secret_key", row.client_id))
        secret = self.sealer.open(row.secret_key, client_context(row.client_id)).decode()
        previous = None
        if row.previous_secret_key is not None:
            # A previous secret is only ever written sealed (rotate_secret), never in clear.
            previous = self.sealer.open(
                row.previous_secret_key, previous_client_context(row.client_id)
            ).decode()
        return Client(
            client_id=row.client_id,
            secret_key=secret,
            enabled=bool(row.enabled),
            created_at=row.created_at,
            label=row.label,
            secret_rotated_at=row.secret_rotated_at,
            previous_secret_key=previous,
            previous_expires_at=row.previous_expires_at,
            token_generation=row.token_generation,
        )

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False when no such client. A disable also bumps
        the token generation: tokens minted before it stay dead after a later enable."""
        values: dict[str, Any] = {"enabled": enabled}
        if not enabled:
            values["token_generation"] = clients.c.token_generation + 1
        with self._write() as connection:
            result = connection.execute(
                update(clients).where(clients.c.client_id == client_id).values(values)
            )
        return result.rowcount > 0

    def set_label(self, client_id: str, label: str | None) -> bool:
        """Set (None: remove) the label; False when no such client."""
        with self._write() as connection:
            result = connection.execute(
                update(clients).where(clients.c.client_id == client_id).values(label=label)
            )
        return result.rowcount > 0

    def rotate_secret(
        self,
        client_id: str,
        secret_key: str,
        rotated_at: datetime,
        previous_expires_at: datetime | None,
    ) -> Client | None:
        """Make ``secret_key`` current; the replaced one verifies until
        ``previous_expires_at`` (None: at once no more). Returns the client as it was.

        One write transaction, the row read FOR UPDATE on PostgreSQL (SQLite's BEGIN
        IMMEDIATE already excludes other writers): two rotations at once leave the
        second's secret current and the first's as the previous one, never a secret that
        no rotation printed.
        """
        rotated_at = require_utc(rotated_at, "rotated_at")
        expires = _utc_or_none(previous_expires_at, "previous_expires_at")
        with self._write() as connection:
            row = connection.execute(
                select(clients).where(clients.c.client_id == client_id).with_for_update()
            ).one_or_none()
            if row is None:
                return None
            before = self._client(row)
            sealer = self.sealer
            previous = (
                None
                if expires is None
                # Resealed under its own context: the same bytes as the current column
                # would open as the current secret again.
                else sealer.seal(before.secret_key.encode(), previous_client_context(client_id))
            )
            connection.execute(
                update(clients)
                .where(clients.c.client_id == client_id)
                .values(
                    secret_key=sealer.seal(secret_key.encode(), client_context(client_id)),
                    secret_rotated_at=rotated_at,
                    previous_secret_key=previous,
                    previous_expires_at=expires,
                    # Tokens minted with the replaced secret stop working at once; the
                    # grace is for signing requests, not for old tokens.
                    token_generation=clients.c.token_generation + 1,
                )
            )
        return before

    def forget_expired_secrets(self, now: datetime) -> int:
        """Delete previous secrets whose grace ended by ``now``; returns how many."""
        with self._write() as connection:
            result = connection.execute(
                update(clients)
                .where(clients.c.previous_expires_at <= require_utc(now, "now"))
                .values(previous_secret_key=None, previous_expires_at=None)
            )
        return result.rowcount


class SqlFileRepository(_SqlRepository):
    """Stored-file metadata in the ``files`` table."""

    def add(self, stored: StoredFile, event: FileEvent | None = None) -> None:
        """Insert one row (and ``event``); ``Conflict`` (``duplicate_id``) when the id or
        key is taken.

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

        def insert_row(connection: Connection) -> None:
            try:
                inserted = _insert_unless_taken(connection, files, values)
            except exc.IntegrityError as error:
                # Not a clash of id or key (those are answered, not raised): the client.
                raise unknown_client(stored.client_id) from error
            if not inserted:
                raise duplicate_file(stored)
            connection.execute(delete(pending_blobs).where(pending_blobs.c.key == stored.key))
            if event is not None:
                _append_event(connection, event)

        self._run(insert_row)

    def remove(self, file_id: str, node_id: int, event: FileEvent) -> StoredFile | None:
        """Delete the row, reserve its key for the blob removal, append ``event``; None
        when there is no such row, ``Conflict`` (``file_on_hold``) while it is on hold.

        A removed data key is gone from every file berkas controls before this returns:
        on SQLite (``secure_delete``, engine.py) the freed page is zeroed, and the
        write-ahead log, which still holds the page as the upload wrote it, is
        checkpointed and truncated (crypto-shredding; README "Secrets at rest").
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
            return connection.execute(
                select(files.c.id)
                .where(files.c.client_id == client_id)
                .where(files.c.category == category)
                .where(files.c.sha256 == sha256)
                .order_by(files.c.created_at, files.c.id)
                .limit(1)
            ).scalar_one_or_none()

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

    def get(self, file_id: str) -> StoredFile | None:
        """The file with ``file_id``, or None."""
        if _NUL in file_id:
            return None
        with self._read() as connection:
            row = connection.execute(select(files).where(files.c.id == file_id)).one_or_none()
        return None if row is None else _stored_file(row)

    def get_by_key(self, key: str) -> StoredFile | None:
        """The file stored under blob ``key``, or None."""
        if _NUL in key:
            return None
        with self._read() as connection:
            row = connection.execute(select(files).where(files.c.key == key)).one_or_none()
        return None if row is None else _stored_file(row)

    # ``berkas files upgrade`` and the counts ``berkas secrets status`` shows.

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


def _append_event(connection: Connection, event: FileEvent) -> None:
    connection.execute(
        insert(file_events).values(
            file_id=event.file_id,
            client_id=event.client_id,
            kind=event.kind.value,
            at=require_utc(event.at, "at"),
            ip=event.ip,
            # Caller text: bounded to the column so a long header cannot fail the action.
            user_agent=None if event.user_agent is None else event.user_agent[:512],
            detail=event.detail,
            request_id=None if event.request_id is None else event.request_id[:128],
            actor=None if event.actor is None else event.actor[:255],
        )
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
        self._run(lambda connection: _append_event(connection, event))

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


class SqlTaskLeases(_SqlRepository):
    """Leases on cluster-wide chores in ``task_leases``."""

    def acquire(self, name: str, holder: str, expires_at: datetime, now: datetime) -> bool:
        """Take ``name`` if free, expired or already ours; one statement decides."""
        values = {"name": name, "holder": holder, "expires_at": require_utc(expires_at, "until")}
        now = require_utc(now, "now")

        def take(connection: Connection) -> bool:
            if _insert_unless_taken(connection, task_leases, values):
                return True
            taken = connection.execute(
                update(task_leases)
                .where(task_leases.c.name == name)
                .where(or_(task_leases.c.holder == holder, task_leases.c.expires_at <= now))
                .values(holder=holder, expires_at=values["expires_at"])
            )
            return taken.rowcount == 1

        return self._run(take)

    def release(self, name: str, holder: str) -> None:
        """Give ``name`` up if this holder has it."""
        with self._write() as connection:
            connection.execute(
                delete(task_leases)
                .where(task_leases.c.name == name)
                .where(task_leases.c.holder == holder)
            )


class SqlReplayRepository(_SqlRepository, _Sealed):
    """Request-Id reservations and the responses they got, in the ``replays`` table.

    A response body is sealed under the master key, bound to the client, the Request-Id
    and the status: the answer to ``POST /token`` is a live bearer token, and a dump, a
    replica or a read-only SQL account must not yield it.
    """

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    def _seal(self, client_id: str, request_id: str, status: int | None, body: bytes) -> bytes:
        context = replay_context(client_id, request_id, status)
        return self.sealer.seal(body, context).encode("ascii")

    def _replay(self, row: Row[Any]) -> ReplayRecord:
        body = None
        if row.body is not None:
            stored = bytes(row.body).decode("ascii", errors="replace")
            if not is_sealed(stored):
                raise SealingError(clear_value_message("replays.body", row.request_id))
            context = replay_context(row.client_id, row.request_id, row.status)
            body = self.sealer.open(stored, context)
        return ReplayRecord(
            client_id=row.client_id,
            request_id=row.request_id,
            fingerprint=row.fingerprint,
            status=row.status,
            body=body,
            created_at=row.created_at,
        )

    def begin(self, record: ReplayRecord) -> ReplayRecord | None:
        """Reserve (client_id, request_id); None when newly reserved, else the existing row.

        The primary key decides between racing nodes: exactly one INSERT succeeds, the
        others hit the unique violation and read the winner's row.
        """
        values = {
            "client_id": record.client_id,
            "request_id": record.request_id,
            "fingerprint": record.fingerprint,
            "status": record.status,
            "body": (
                None
                if record.body is None
                else self._seal(record.client_id, record.request_id, record.status, record.body)
            ),
            "created_at": require_utc(record.created_at, "created_at"),
        }
        key = (replays.c.client_id == record.client_id, replays.c.request_id == record.request_id)

        def reserve(connection: Connection) -> Row[Any] | bool | None:
            if _insert_unless_taken(connection, replays, values):
                return True
            # Read on this connection: it also sees a reservation made earlier in the
            # same (group-committed) transaction.
            return connection.execute(select(replays).where(*key)).one_or_none()

        for _ in range(_BEGIN_ATTEMPTS):
            row = self._run(reserve)
            if row is True:
                return None
            if isinstance(row, Row):
                return self._replay(row)
            # Released in between: try to reserve again.
        raise Unavailable(
            f"Request-Id {record.request_id!r} is being reserved and released repeatedly; "
            "retry the request.",
            code=Code.DATABASE_UNAVAILABLE,
        )

    def finish(self, client_id: str, request_id: str, status: int, body: bytes) -> None:
        """Record the response; a reservation already released or purged stays absent."""
        with self._write() as connection:
            connection.execute(
                update(replays)
                .where(replays.c.client_id == client_id, replays.c.request_id == request_id)
                .values(status=status, body=self._seal(client_id, request_id, status, body))
            )

    def release(self, client_id: str, request_id: str) -> None:
        """Forget a reservation so a retry of the same Request-Id runs again."""
        with self._write() as connection:
            connection.execute(
                delete(replays).where(
                    replays.c.client_id == client_id, replays.c.request_id == request_id
                )
            )

    def release_stale(self, client_id: str, request_id: str, started_before: datetime) -> bool:
        """Forget a reservation left unanswered since before ``started_before``."""
        with self._write() as connection:
            result = connection.execute(
                delete(replays).where(
                    replays.c.client_id == client_id,
                    replays.c.request_id == request_id,
                    replays.c.body.is_(None),
                    replays.c.created_at < require_utc(started_before, "started_before"),
                )
            )
        return bool(result.rowcount)

    def purge_before(self, cutoff: datetime, *, uploads_before: datetime) -> int:
        """Delete signed-request records created before ``cutoff`` and upload records
        (``UPLOAD_REPLAY_PREFIX``) created before ``uploads_before``; returns how many."""
        upload = replays.c.request_id.startswith(UPLOAD_REPLAY_PREFIX, autoescape=True)
        with self._write() as connection:
            result = connection.execute(
                delete(replays).where(
                    or_(
                        and_(~upload, replays.c.created_at < require_utc(cutoff, "cutoff")),
                        and_(upload, replays.c.created_at < require_utc(uploads_before, "at")),
                    )
                )
            )
        return result.rowcount

    def _get(self, client_id: str, request_id: str) -> ReplayRecord | None:
        with self._read() as connection:
            row = connection.execute(
                select(replays).where(
                    replays.c.client_id == client_id, replays.c.request_id == request_id
                )
            ).one_or_none()
        return None if row is None else self._replay(row)


class SqlNodeLeaseRepository(_SqlRepository):
    """Node-number leases in the ``node_leases`` table."""

    def acquire(self, lease: NodeLease, now: datetime) -> NodeLease | None:
        """Take the number unless another holder's lease is still live at ``now``.

        One write transaction: on SQLite it starts with BEGIN IMMEDIATE, on PostgreSQL the
        row is read FOR UPDATE, and a first claim races on the primary key; so two nodes
        claiming one free number at once cannot both win.
        """
        now = require_utc(now, "now")
        values = {
            "holder": lease.holder,
            "label": lease.label,
            "expires_at": require_utc(lease.expires_at, "expires_at"),
        }
        try:
            with self._write() as connection:
                row = connection.execute(
                    select(node_leases)
                    .where(node_leases.c.node_id == lease.node_id)
                    .with_for_update()
                ).one_or_none()
                if row is None:
                    connection.execute(insert(node_leases).values(node_id=lease.node_id, **values))
                    return None
                current = _lease(row)
                if current.holder != lease.holder and current.expires_at > now:
                    return current
                connection.execute(
                    update(node_leases)
                    .where(node_leases.c.node_id == lease.node_id)
                    .values(**values)
                )
                return None
        except exc.IntegrityError:
            # Another node inserted the same number first: it is theirs now.
            with self._read() as connection:
                row = connection.execute(
                    select(node_leases).where(node_leases.c.node_id == lease.node_id)
                ).one()
            return _lease(row)

    def renew(self, lease: NodeLease) -> bool:
        """Extend the lease while this holder still has it."""
        with self._write() as connection:
            result = connection.execute(
                update(node_leases)
                .where(
                    node_leases.c.node_id == lease.node_id,
                    node_leases.c.holder == lease.holder,
                )
                .values(
                    label=lease.label,
                    expires_at=require_utc(lease.expires_at, "expires_at"),
                )
            )
        return bool(result.rowcount)

    def release(self, node_id: int, holder: str) -> None:
        """Drop this holder's lease on ``node_id``."""
        with self._write() as connection:
            connection.execute(
                delete(node_leases).where(
                    node_leases.c.node_id == node_id, node_leases.c.holder == holder
                )
            )

    def held(self, now: datetime) -> list[NodeLease]:
        """Leases live at ``now``, lowest number first."""
        with self._read() as connection:
            rows = connection.execute(
                select(node_leases)
                .where(node_leases.c.expires_at > require_utc(now, "now"))
                .order_by(node_leases.c.node_id)
            ).all()
        return [_lease(row) for row in rows]


def _utc_or_none(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else require_utc(value, field)


def _lease(row: Row[Any]) -> NodeLease:
    return NodeLease(
        node_id=row.node_id, holder=row.holder, label=row.label, expires_at=row.expires_at
    )


def _stored_file(row: Row[Any]) -> StoredFile:
    return StoredFile(
        id=row.id,
        client_id=row.client_id,
        category=row.category,
        code=row.code,
        key=row.key,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        width=row.width,
        height=row.height,
        created_at=row.created_at,
        retained_until=row.retained_until,
        legal_hold=bool(row.legal_hold),
        link_generation=row.link_generation,
        data_key=row.data_key,
        metadata_removed=tuple(row.metadata_removed.split(",")) if row.metadata_removed else (),
        metadata_checked=bool(row.metadata_checked),
    )


class SqlKeyStore(_SqlRepository, _Sealed):
    """The signing keys in ``signing_keys`` (an ``adapters.keys.KeyStore``), sealed."""

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    def index(self) -> list[StoredKey]:
        """Every key's kid and dates; no private key is read."""
        columns = (signing_keys.c.kid, signing_keys.c.created_at, signing_keys.c.retired_at)
        with self._read() as connection:
            rows = connection.execute(select(*columns)).all()
        return [StoredKey(row.kid, row.created_at, row.retired_at) for row in rows]

    def private_pem(self, kid: str) -> bytes | None:
        """The opened PEM of ``kid``; None when no such key."""
        with self._read() as connection:
            sealed = connection.execute(
                select(signing_keys.c.private_key).where(signing_keys.c.kid == kid)
            ).scalar_one_or_none()
        return None if sealed is None else self.sealer.open(sealed, key_context(kid))

    def add(self, key: StoredKey, pem: bytes, *, replace_current: bool) -> bool:
        """Insert ``key`` (retiring the current one first if asked); False if refused."""
        current = key.retired_at is None
        values = {
            "kid": key.kid,
            "created_at": require_utc(key.created_at, "created_at"),
            "retired_at": (
                None if key.retired_at is None else require_utc(key.retired_at, "retired_at")
            ),
            "is_current": True if current else None,
            "private_key": self.sealer.seal(pem, key_context(key.kid)),
        }
        try:
            with self._write() as connection:
                if current and replace_current:
                    connection.execute(
                        update(signing_keys)
                        .where(signing_keys.c.is_current.is_(True))
                        .values(is_current=None, retired_at=values["created_at"])
                    )
                connection.execute(insert(signing_keys).values(values))
        except exc.IntegrityError:
            # The kid exists, or another key became current first (the unique constraint
            # on is_current): nothing of this attempt was stored.
            return False
        return True

    def remove(self, kids: list[str]) -> None:
        """Delete the keys named."""
        with self._write() as connection:
            connection.execute(delete(signing_keys).where(signing_keys.c.kid.in_(kids)))


class SqlServiceSecrets(_SqlRepository, _Sealed):
    """Named secrets of the service (the link secret) in ``service_secrets``, sealed."""

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    def get(self, name: str) -> bytes | None:
        """The opened secret called ``name``, or None."""
        with self._read() as connection:
            sealed = connection.execute(
                select(service_secrets.c.value).where(service_secrets.c.name == name)
            ).scalar_one_or_none()
        return None if sealed is None else self.sealer.open(sealed, secret_context(name))

    def ensure(self, name: str, value: bytes, now: datetime) -> bytes:
        """Store ``value`` as ``name`` unless a value exists; returns the one stored.

        Nodes starting together race here; the first insert wins and everyone returns it.
        """
        existing = self.get(name)
        if existing is not None:
            return existing
        row = {
            "name": name,
            "value": self.sealer.seal(value, secret_context(name)),
            "created_at": require_utc(now, "now"),
        }
        with self._write() as connection:
            _insert_unless_taken(connection, service_secrets, row)  # or another node did
            sealed = connection.execute(
                select(service_secrets.c.value).where(service_secrets.c.name == name)
            ).scalar_one()
        return self.sealer.open(sealed, secret_context(name))


@dataclass(frozen=True, slots=True)
class _SealedColumn:
    """One column that holds sealed values, and what each value is bound to."""

    kind: str  # as ``berkas secrets status`` names it
    name: str  # table.column, as error messages name it
    value: Column[Any]
    row_id: Column[Any]  # names the row in messages
    context: Callable[[Row[Any]], str]
    binary: bool = False
    where: ColumnElement[bool] | None = None

    def select(self) -> Select[Any]:
        columns = self.value.table.c
        query = select(*columns).where(self.value.is_not(None))
        return query if self.where is None else query.where(self.where)

    def clear(self) -> ColumnElement[bool]:
        """A filter for the values of this column that are not sealed."""
        if self.binary:
            return func.substr(self.value, 1, len(PREFIX)) != PREFIX.encode()
        return self.value.not_like(f"{PREFIX}%")

    def text(self, row: Row[Any]) -> str:
        raw = row._mapping[self.value]
        return bytes(raw).decode("ascii", errors="replace") if self.binary else raw


_data_key_current = files.c.data_key_binding == DATA_KEY_BINDING
_LEGACY_DATA_KEYS = _SealedColumn(
    # Data keys 0007 and older sealed to the file id alone, until the next start
    # rebinds them (SqlSealedValues.rebind_data_keys).
    "document data keys",
    "files.data_key",
    files.c.data_key,
    files.c.id,
    lambda row: legacy_data_key_context(row.id),
    where=files.c.data_key_binding.is_(None),
)
_SEALED_COLUMNS = (
    _SealedColumn(
        "client secret keys",
        "clients.secret_key",
        clients.c.secret_key,
        clients.c.client_id,
        lambda row: client_context(row.client_id),
    ),
    _SealedColumn(
        # Replaced by a rotation, verifying until their grace ends (NULL otherwise).
        "previous client secret keys",
        "clients.previous_secret_key",
        clients.c.previous_secret_key,
        clients.c.client_id,
        lambda row: previous_client_context(row.client_id),
    ),
    _SealedColumn(
        "signing keys",
        "signing_keys.private_key",
        signing_keys.c.private_key,
        signing_keys.c.kid,
        lambda row: key_context(row.kid),
    ),
    _SealedColumn(
        "service secrets",
        "service_secrets.value",
        service_secrets.c.value,
        service_secrets.c.name,
        lambda row: secret_context(row.name),
    ),
    _SealedColumn(
        # Each encrypted document's own key, bound to its id, owner, object key and link
        # generation; NULL for documents stored in the clear.
        "document data keys",
        "files.data_key",
        files.c.data_key,
        files.c.id,
        lambda row: data_key_context(
            DataKeyBinding(row.id, row.client_id, row.key, row.link_generation)
        ),
        where=_data_key_current,
    ),
    _LEGACY_DATA_KEYS,
    _SealedColumn(
        # The answers a Request-Id replay gives again (a bearer token for POST /token).
        "replay answers",
        "replays.body",
        replays.c.body,
        replays.c.request_id,
        lambda row: replay_context(row.client_id, row.request_id, row.status),
        binary=True,
    ),
)
# The marker `berkas secrets seal-legacy` leaves (a service secret, so it is sealed): once
# it is there the command refuses to seal anything again.
LEGACY_SEALED = "legacy-clear-secrets-sealed"


class SqlSealedValues(_SqlRepository, _Sealed):
    """Every sealed value of the database at once: what ``berkas secrets`` reports and
    reseals under the current master key, and the start-up checks that no sealed column
    holds a value in clear.

    Nothing here ever seals a clear value it finds, but for ``seal_legacy``: whoever can
    write one row without the master key would otherwise choose a partner's secret or a
    signing key, and the next start would seal it and trust it.
    """

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    @property
    def master_key_ids(self) -> tuple[str, ...]:
        """The master keys this process holds, the one that seals first."""
        return self.sealer.kids

    def by_master_key(self) -> dict[str, dict[str, int]]:
        """For each kind of secret, how many values each master key id seals
        (``clear`` for values not sealed at all)."""
        report: dict[str, dict[str, int]] = {column.kind: {} for column in _SEALED_COLUMNS}
        with self._read() as connection:
            for column in _SEALED_COLUMNS:
                counts = report[column.kind]
                for row in connection.execute(column.select()):
                    kid = sealed_kid(column.text(row)) or "clear"
                    counts[kid] = counts.get(kid, 0) + 1
        return report

    def clear_values(self) -> list[tuple[str, str]]:
        """Every value of a sealed column that is not sealed: (column, row), in order."""
        found: list[tuple[str, str]] = []
        with self._read() as connection:
            for column in _SEALED_COLUMNS:
                query = select(column.row_id).where(column.value.is_not(None), column.clear())
                rows = connection.execute(query.order_by(column.row_id)).scalars()
                found.extend((column.name, str(row_id)) for row_id in rows)
        return sorted(set(found))

    def legacy_clear(self) -> list[str]:
        """Client ids migration 0008 found with a secret in clear, not sealed since."""
        with self._read() as connection:
            rows = connection.execute(
                select(legacy_clear_secrets.c.client_id)
                .join(clients, clients.c.client_id == legacy_clear_secrets.c.client_id)
                .where(clients.c.secret_key.not_like(f"{PREFIX}%"))
                .order_by(legacy_clear_secrets.c.client_id)
            ).scalars()
            return list(rows)

    def reseal(self) -> dict[str, int]:
        """Reseal under the current master key every value sealed under an older one; one
        transaction. A value in clear is left as it is (``clear_values`` names it).
        Returns how many values of each kind were resealed."""
        sealer = self.sealer
        done: dict[str, int] = {column.kind: 0 for column in _SEALED_COLUMNS}
        with self._write() as connection:
            for column in _SEALED_COLUMNS:
                for row in connection.execute(column.select()).all():
                    stored = column.text(row)
                    if not is_sealed(stored) or not sealer.needs_reseal(stored):
                        continue
                    context = column.context(row)
                    sealed = sealer.seal(sealer.open(stored, context), context)
                    self._store(connection, column, row, sealed)
                    done[column.kind] += 1
        if any(done.values()):
            # What the older key sealed must not linger where that key would open it.
            with translate_errors():
                compact(self._engine)
        return done

    def rebind_data_keys(self) -> int:
        """Reseal each data key still bound to its file id alone (0007 and older) to the
        file's id, owner, object key and link generation; returns how many. A key that
        does not open under its old binding is left alone and logged (its document is
        then refused as unreadable, never served)."""
        sealer = self.sealer
        legacy = _LEGACY_DATA_KEYS
        rebound = 0
        with self._write() as connection:
            for row in connection.execute(legacy.select()).all():
                try:
                    key = sealer.open(row.data_key, legacy.context(row))
                except SealingError as error:
                    log.error("the data key of %s cannot be rebound: %s", row.id, error)
                    continue
                binding = DataKeyBinding(row.id, row.client_id, row.key, row.link_generation)
                connection.execute(
                    update(files)
                    .where(files.c.id == row.id, files.c.data_key_binding.is_(None))
                    .values(
                        data_key=sealer.seal(key, data_key_context(binding)),
                        data_key_binding=DATA_KEY_BINDING,
                    )
                )
                rebound += 1
        return rebound

    def seal_legacy(self, now: datetime) -> list[str]:
        """Seal the client secrets migration 0008 found in clear (an older release wrote
        them) and nothing else; once. Returns the client ids sealed. ``SealingError`` when
        it already ran, or when nothing is listed."""
        sealer = self.sealer
        with self._write() as connection:
            marker = connection.execute(
                select(service_secrets.c.value).where(service_secrets.c.name == LEGACY_SEALED)
            ).scalar_one_or_none()
            if marker is not None:
                when = sealer.open(marker, secret_context(LEGACY_SEALED)).decode()
                raise SealingError(
                    f"the client secrets an older release stored in clear were sealed on "
                    f"{when}; this is done once only. A clear value found since was "
                    "written into the database without the master key and is not sealed"
                )
            rows = connection.execute(
                select(clients.c.client_id, clients.c.secret_key)
                .join(legacy_clear_secrets, clients.c.client_id == legacy_clear_secrets.c.client_id)
                .where(clients.c.secret_key.not_like(f"{PREFIX}%"))
                .order_by(clients.c.client_id)
            ).all()
            if not rows:
                raise SealingError(
                    "no client secret stored in clear by an older release is listed; "
                    "nothing was sealed"
                )
            for client_id, secret in rows:
                connection.execute(
                    update(clients)
                    .where(clients.c.client_id == client_id)
                    .values(secret_key=sealer.seal(secret.encode(), client_context(client_id)))
                )
            connection.execute(delete(legacy_clear_secrets))
            connection.execute(
                insert(service_secrets).values(
                    name=LEGACY_SEALED,
                    value=sealer.seal(
                        now.isoformat(timespec="seconds").encode(), secret_context(LEGACY_SEALED)
                    ),
                    created_at=require_utc(now, "now"),
                )
            )
        return [client_id for client_id, _ in rows]

    def record_master_key(self, now: datetime) -> None:
        """Note when the current master key first sealed here (kept if already noted)."""
        values = {"kid": self.sealer.current.kid, "first_used_at": require_utc(now, "now")}
        self._run(lambda connection: _insert_unless_taken(connection, master_keys, values))

    def master_key_ages(self) -> dict[str, datetime]:
        """When each master key id first sealed in this database."""
        with self._read() as connection:
            rows = connection.execute(select(master_keys.c.kid, master_keys.c.first_used_at))
            return {row.kid: row.first_used_at for row in rows}

    @staticmethod
    def _store(connection: Connection, column: _SealedColumn, row: Row[Any], sealed: str) -> None:
        table = column.value.table
        match = [key == row._mapping[key] for key in table.primary_key.columns]
        value: str | bytes = sealed.encode("ascii") if column.binary else sealed
        connection.execute(update(table).where(*match).values({column.value.name: value}))
