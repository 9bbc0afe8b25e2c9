"""The SQL repositories (clients, files, replay records) over one SQLAlchemy engine.

Vendor exceptions stop here: lost connections become ``Unavailable``, key clashes
``Conflict``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, exc, insert, or_, select, update

from berkas.adapters.db.engine import WRITE_OPTION
from berkas.adapters.db.tables import clients, files, node_leases, pending_blobs, replays
from berkas.core.codes import Code
from berkas.core.errors import Unavailable
from berkas.core.models import (
    Client,
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


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn driver failures into ``Unavailable(code=Code.DATABASE_UNAVAILABLE)``.

    Covers a server that is down or unreachable, a dropped connection, a locked SQLite
    file past its busy timeout and an exhausted connection pool: all safe to retry later.
    """
    try:
        yield
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        raise Unavailable(
            "The metadata database is unreachable; try again later.",
            code=Code.DATABASE_UNAVAILABLE,
        ) from error


class _SqlRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Same pool; on SQLite transactions from here start with BEGIN IMMEDIATE.
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with translate_errors(), self._writer.begin() as connection:
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with translate_errors(), self._engine.connect() as connection:
            yield connection


class SqlClientRepository(_SqlRepository):
    """Partner clients in the ``clients`` table."""

    def add(self, client: Client) -> None:
        """Insert; raises ``Conflict`` (code ``client_exists``) on a duplicate id."""
        values = {
            "client_id": client.client_id,
            "secret_key": client.secret_key,
            "enabled": client.enabled,
            "created_at": require_utc(client.created_at, "created_at"),
        }
        try:
            with self._write() as connection:
                connection.execute(insert(clients).values(values))
        except exc.IntegrityError as error:
            raise client_exists(client.client_id) from error

    def get(self, client_id: str) -> Client | None:
        """The client with ``client_id``, or None."""
        with self._read() as connection:
            row = connection.execute(
                select(clients).where(clients.c.client_id == client_id)
            ).one_or_none()
        return None if row is None else _client(row)

    def list(self) -> list[Client]:
        """Every client, oldest first."""
        with self._read() as connection:
            rows = connection.execute(
                select(clients).order_by(clients.c.created_at, clients.c.client_id)
            ).all()
        return [_client(row) for row in rows]

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False when no such client."""
        with self._write() as connection:
            result = connection.execute(
                update(clients).where(clients.c.client_id == client_id).values(enabled=enabled)
            )
        return result.rowcount > 0


class SqlFileRepository(_SqlRepository):
    """Stored-file metadata in the ``files`` table."""

    def add(self, stored: StoredFile) -> None:
        """Insert one row; ``Conflict`` (``duplicate_id``) when the id or key is taken.

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
        }
        try:
            with self._write() as connection:
                connection.execute(insert(files).values(values))
                connection.execute(delete(pending_blobs).where(pending_blobs.c.key == stored.key))
        except exc.IntegrityError as error:
            # Tell the three constraints apart by looking, not by parsing driver messages.
            with self._read() as connection:
                taken = connection.execute(
                    select(files.c.id).where(
                        or_(files.c.id == stored.id, files.c.key == stored.key)
                    )
                ).first()
            if taken is None:
                raise unknown_client(stored.client_id) from error
            raise duplicate_file(stored) from error

    def reserve_key(self, key: str, node_id: int, created_at: datetime) -> None:
        """Record the intent to write ``key`` (idempotent)."""
        values = {
            "key": key,
            "node_id": node_id,
            "created_at": require_utc(created_at, "created_at"),
        }
        try:
            with self._write() as connection:
                connection.execute(insert(pending_blobs).values(values))
        except exc.IntegrityError:
            pass  # already reserved: the same intent, recorded once

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
        with self._read() as connection:
            row = connection.execute(select(files).where(files.c.id == file_id)).one_or_none()
        return None if row is None else _stored_file(row)

    def get_by_key(self, key: str) -> StoredFile | None:
        """The file stored under blob ``key``, or None."""
        with self._read() as connection:
            row = connection.execute(select(files).where(files.c.key == key)).one_or_none()
        return None if row is None else _stored_file(row)


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
        for _ in range(_BEGIN_ATTEMPTS):
            try:
                with self._write() as connection:
                    connection.execute(insert(replays).values(values))
            except exc.IntegrityError:
                existing = self._get(record.client_id, record.request_id)
                if existing is not None:
                    return existing
                continue
            return None
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


def _lease(row: Row[Any]) -> NodeLease:
    return NodeLease(
        node_id=row.node_id, holder=row.holder, label=row.label, expires_at=row.expires_at
    )


def _client(row: Row[Any]) -> Client:
    return Client(
        client_id=row.client_id,
        secret_key=row.secret_key,
        enabled=bool(row.enabled),
        created_at=row.created_at,
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
