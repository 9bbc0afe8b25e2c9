"""The SQL repositories (clients, files, replay records, leases, keys, secrets) over one
SQLAlchemy engine.

Vendor exceptions stop here: lost connections become ``Unavailable``, key clashes
``Conflict``. Secrets (client secret keys, signing keys, the link secret) are sealed
under the master key on the way in and opened on the way out (adapters/sealing.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, Table, delete, exc, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from berkas.adapters.db.engine import read_options
from berkas.adapters.db.tables import (
    clients,
    file_events,
    files,
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
    Sealer,
    SealingError,
    data_key_context,
    is_sealed,
    sealed_kid,
)
from berkas.core.codes import Code
from berkas.core.errors import Unavailable
from berkas.core.models import (
    Client,
    EventKind,
    FileEvent,
    NodeLease,
    ReplayRecord,
    StoredFile,
    client_exists,
    duplicate_file,
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


def client_context(client_id: str) -> str:
    """What a client's sealed secret is bound to (its row)."""
    return f"client:{client_id}:secret_key"


def previous_client_context(client_id: str) -> str:
    """What a client's sealed previous secret is bound to: its row and its column, so the
    two sealed values of one row cannot be swapped (a replaced secret made current again,
    or kept past its grace)."""
    return f"client:{client_id}:previous_secret_key"


def key_context(kid: str) -> str:
    """What a sealed signing key is bound to (its kid)."""
    return f"signing-key:{kid}"


def secret_context(name: str) -> str:
    """What a sealed service secret is bound to (its name)."""
    return f"service-secret:{name}"


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
            # Every start seals what an older berkas wrote in clear (wiring.prepare), so
            # plaintext here was put there since, around the master key: refused, or
            # whoever can write one row could choose a partner's secret.
            raise SealingError(
                f"{client_context(row.client_id)} is stored in clear; restart berkas serve "
                "to seal it, or create the client anew"
            )
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
        )

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False when no such client."""
        with self._write() as connection:
            result = connection.execute(
                update(clients).where(clients.c.client_id == client_id).values(enabled=enabled)
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
            "metadata_removed": ",".join(stored.metadata_removed) or None,
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
        """Delete the row, reserve its key for the blob removal, append ``event``."""
        if _NUL in file_id:
            return None

        def remove_row(connection: Connection) -> StoredFile | None:
            row = connection.execute(
                delete(files).where(files.c.id == file_id).returning(*files.c)
            ).one_or_none()
            if row is None:
                return None
            removed = _stored_file(row)
            _insert_unless_taken(
                connection,
                pending_blobs,
                {"key": removed.key, "node_id": node_id, "created_at": event.at},
            )
            _append_event(connection, event)
            return removed

        return self._run(remove_row)

    def revoke_links(self, file_id: str, event: FileEvent) -> int | None:
        """Bump the link generation and append ``event``; None when no such file."""
        if _NUL in file_id:
            return None

        def bump(connection: Connection) -> int | None:
            generation = connection.execute(
                update(files)
                .where(files.c.id == file_id)
                .values(link_generation=files.c.link_generation + 1)
                .returning(files.c.link_generation)
            ).scalar_one_or_none()
            if generation is not None:
                _append_event(connection, event)
            return generation

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


class SqlReplayRepository(_SqlRepository):
    """Request-Id reservations and the responses they got, in the ``replays`` table."""

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
            "body": record.body,
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
                return _replay(row)
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
                .values(status=status, body=body)
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

    def purge_before(self, cutoff: datetime) -> int:
        """Delete records created before ``cutoff``; returns how many."""
        with self._write() as connection:
            result = connection.execute(
                delete(replays).where(replays.c.created_at < require_utc(cutoff, "cutoff"))
            )
        return result.rowcount

    def _get(self, client_id: str, request_id: str) -> ReplayRecord | None:
        with self._read() as connection:
            row = connection.execute(
                select(replays).where(
                    replays.c.client_id == client_id, replays.c.request_id == request_id
                )
            ).one_or_none()
        return None if row is None else _replay(row)


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
    )


def _replay(row: Row[Any]) -> ReplayRecord:
    return ReplayRecord(
        client_id=row.client_id,
        request_id=row.request_id,
        fingerprint=row.fingerprint,
        status=row.status,
        body=None if row.body is None else bytes(row.body),
        created_at=row.created_at,
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


class SqlSealedValues(_SqlRepository, _Sealed):
    """Every sealed value of the database at once: what ``berkas secrets`` reports and
    reseals under the current master key."""

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    @property
    def master_key_ids(self) -> tuple[str, ...]:
        """The master keys this process holds, the one that seals first."""
        return self.sealer.kids

    def by_master_key(self) -> dict[str, dict[str, int]]:
        """For each kind of secret, how many values each master key id seals
        (``plaintext`` for client secrets written before sealing)."""
        report: dict[str, dict[str, int]] = {}
        with self._read() as connection:
            for kind, _table, _context, _key, value in self._columns():
                counts = report.setdefault(kind, {})
                for sealed in connection.execute(select(value).where(value.is_not(None))).scalars():
                    kid = sealed_kid(sealed) or "plaintext"
                    counts[kid] = counts.get(kid, 0) + 1
        return report

    def reseal(self, *, plaintext_only: bool) -> dict[str, int]:
        """Seal under the current master key every value that is not yet (or, with
        ``plaintext_only``, every plaintext client secret); one transaction. Returns how
        many values of each kind were resealed."""
        sealer = self.sealer
        done: dict[str, int] = {}
        with self._write() as connection:
            for kind, table, context, key, value in self._columns():
                done[kind] = 0
                for row in connection.execute(select(key, value).where(value.is_not(None))).all():
                    name, stored = row[0], row[1]
                    if not sealer.needs_reseal(stored):
                        continue
                    if plaintext_only and is_sealed(stored):
                        continue
                    plain = (
                        sealer.open(stored, context(name)) if is_sealed(stored) else stored.encode()
                    )
                    connection.execute(
                        update(table)
                        .where(key == name)
                        .values({value.name: sealer.seal(plain, context(name))})
                    )
                    done[kind] += 1
        return done

    @staticmethod
    def _columns() -> list[tuple[str, Any, Any, Any, Any]]:
        return [
            (
                "client secret keys",
                clients,
                client_context,
                clients.c.client_id,
                clients.c.secret_key,
            ),
            (
                # Replaced by a rotation, verifying until their grace ends (NULL otherwise).
                "previous client secret keys",
                clients,
                previous_client_context,
                clients.c.client_id,
                clients.c.previous_secret_key,
            ),
            (
                "signing keys",
                signing_keys,
                key_context,
                signing_keys.c.kid,
                signing_keys.c.private_key,
            ),
            (
                "service secrets",
                service_secrets,
                secret_context,
                service_secrets.c.name,
                service_secrets.c.value,
            ),
            (
                # Each encrypted document's own key (issue 11); NULL for plaintext ones.
                "document data keys",
                files,
                data_key_context,
                files.c.id,
                files.c.data_key,
            ),
        ]
