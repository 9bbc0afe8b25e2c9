"""The SQL repositories (clients, files, replay records, leases, keys, secrets) over one
SQLAlchemy engine.

Vendor exceptions stop here: lost connections become ``Unavailable``, key clashes
``Conflict``. Secrets (client secret keys, signing keys, the link secret) are sealed
under the master key on the way in and opened on the way out (adapters/sealing.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, exc, insert, or_, select, update

from berkas.adapters.db.engine import READ_OPTION
from berkas.adapters.db.tables import (
    clients,
    files,
    node_leases,
    pending_blobs,
    replays,
    service_secrets,
    signing_keys,
)
from berkas.adapters.db.writes import DirectWrites, Writes
from berkas.adapters.keys import StoredKey
from berkas.adapters.sealing import Sealer, SealingError, is_sealed, sealed_kid
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
# PostgreSQL text cannot hold NUL, so no row anywhere does; psycopg refuses to even send
# a parameter carrying one (DataError). A lookup of such text finds nothing, on every
# backend alike, instead of failing: ids and keys in lookups are caller text.
_NUL = "\x00"


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


def _statement_scope(connection: Connection) -> AbstractContextManager[object]:
    """Where a statement that may hit a constraint runs, so the transaction can go on.

    PostgreSQL aborts the whole transaction on an error, so the statement gets a
    SAVEPOINT. SQLite undoes only the failing statement and keeps the transaction
    ("ABORT ... the transaction remains active", https://www.sqlite.org/lang_conflict.html),
    so no savepoint is needed: two statements fewer per write.
    """
    if connection.dialect.name == "sqlite":
        return nullcontext()
    return connection.begin_nested()


class _SqlRepository:
    def __init__(self, engine: Engine, writes: Writes | None = None) -> None:
        self._engine = engine
        # Shared by the repositories of one database (SqlDatabase): on SQLite a group
        # commit, else a transaction per call.
        self._writes = writes if writes is not None else DirectWrites(engine)
        # Reads are single statements: on SQLite they run without BEGIN/ROLLBACK (each
        # statement is its own consistent snapshot), two round trips fewer per read.
        self._reader = engine.execution_options(**{READ_OPTION: True})

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with translate_errors(), self._writes.transaction() as connection:
            yield connection

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
        return Client(
            client_id=row.client_id,
            secret_key=secret,
            enabled=bool(row.enabled),
            created_at=row.created_at,
        )

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
        with self._write() as connection:
            try:
                with _statement_scope(connection):
                    connection.execute(insert(files).values(values))
            except exc.IntegrityError as error:
                # Tell the three constraints apart by looking, not by parsing driver
                # messages; on this connection, which also sees a clashing row written
                # earlier in the same (group-committed) transaction.
                taken = connection.execute(
                    select(files.c.id).where(
                        or_(files.c.id == stored.id, files.c.key == stored.key)
                    )
                ).first()
                if taken is None:
                    raise unknown_client(stored.client_id) from error
                raise duplicate_file(stored) from error
            connection.execute(delete(pending_blobs).where(pending_blobs.c.key == stored.key))

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
        for _ in range(_BEGIN_ATTEMPTS):
            with self._write() as connection:
                try:
                    with _statement_scope(connection):
                        connection.execute(insert(replays).values(values))
                except exc.IntegrityError:
                    # Read on this connection: it also sees a reservation made earlier in
                    # the same (group-committed) transaction.
                    row = connection.execute(select(replays).where(*key)).one_or_none()
                    if row is not None:
                        return _replay(row)
                    continue  # released in between: try to reserve again
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
            try:
                with _statement_scope(connection):
                    connection.execute(insert(service_secrets).values(row))
            except exc.IntegrityError:
                pass  # another node stored it first
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
                for sealed in connection.execute(select(value)).scalars():
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
                for row in connection.execute(select(key, value)).all():
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
        ]
