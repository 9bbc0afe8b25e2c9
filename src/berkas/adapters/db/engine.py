"""Turn ``BERKAS_DATABASE_URL`` into a SQLAlchemy engine tuned for berkas.

Two backends: an SQLite file (the embedded default) and PostgreSQL through psycopg 3.
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
import threading
import time
import weakref
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry

from berkas import install_hint
from berkas.core.codes import Code
from berkas.core.errors import Unavailable
from berkas.core.ports import WriteLockWaits

# How long a writer waits for SQLite's write lock before giving up ("database is locked").
SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long a PostgreSQL connect may take before /readyz and requests report 503.
POSTGRES_CONNECT_TIMEOUT_S = 5
# Execution option asking for ``BEGIN IMMEDIATE`` on SQLite (see _begin below).
WRITE_OPTION = "berkas_write"
# Execution option for a single-statement read: on SQLite no BEGIN is sent, so the
# statement runs in autocommit (its own snapshot) and no ROLLBACK follows.
READ_OPTION = "berkas_read"


def read_options(engine: Engine) -> dict[str, object]:
    """Execution options for a single-statement read on ``engine``.

    One statement is its own consistent snapshot, so no transaction is opened: on SQLite
    no BEGIN is sent (see ``_sqlite_begin``); on PostgreSQL the connection is put in
    autocommit (psycopg sets that locally, and skips ROLLBACK on an idle connection), so a
    read is one round trip instead of BEGIN + SELECT + ROLLBACK.
    """
    if engine.dialect.name == "postgresql":
        return {READ_OPTION: True, "isolation_level": "AUTOCOMMIT"}
    return {READ_OPTION: True}


# Pooled connections: every request thread (anyio's default limiter runs 40) can hold
# one without queueing for the pool, which SQLAlchemy's default of 5 + 10 made them do.
POOL_SIZE = 40
POOL_OVERFLOW = 16

_ACCEPTED = "sqlite:////absolute/path/berkas.db or postgresql://user:password@host:5432/dbname"


def normalise_url(url: str) -> URL:
    """Parse ``url`` and pick berkas's driver: pysqlite for SQLite, psycopg 3 for PostgreSQL.

    Raises ``ValueError`` for an unsupported scheme or a relative or in-memory SQLite path,
    and ``RuntimeError`` when the PostgreSQL driver is not installed.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"database URL is not a valid URL; expected {_ACCEPTED}") from exc
    backend = parsed.get_backend_name()
    driver = parsed.get_driver_name() if "+" in parsed.drivername else None
    if backend in {"postgresql", "postgres"}:
        if driver not in {None, "psycopg"}:
            raise ValueError(
                f"database URL driver {parsed.drivername!r} is not supported; "
                "use postgresql:// (berkas connects with psycopg 3)"
            )
        if importlib.util.find_spec("psycopg") is None:
            raise RuntimeError(
                "database URL is postgresql:// but the psycopg driver is not installed; "
                f"run: {install_hint('postgres')}"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in {None, "pysqlite"}:
            raise ValueError(
                f"database URL driver {parsed.drivername!r} is not supported; use sqlite://"
            )
        database = parsed.database or ""
        # An in-memory database would be private to one pooled connection (and vanish on
        # restart); a relative path would depend on the working directory of the process.
        if database in {"", ":memory:"} or not PurePosixPath(database).is_absolute():
            raise ValueError(
                f"database URL {url!r} does not name an absolute SQLite file path; "
                f"expected {_ACCEPTED}"
            )
        return parsed.set(drivername="sqlite+pysqlite")
    raise ValueError(
        f"database URL scheme {parsed.drivername!r} is not supported; expected {_ACCEPTED}"
    )


def sqlite_file(url: str) -> Path | None:
    """The file an ``sqlite://`` URL names (which connecting would create); None otherwise."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    return Path(str(parsed.database))


def display_url(url: str) -> str:
    """``url`` as it may be printed: any password replaced by ``***``, the user part's
    and a query parameter's (libpq takes ``?password=`` and ``?sslpassword=`` as well,
    https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING-URIS)."""
    try:
        parsed = make_url(url)
        hidden = {
            name: "***" if _SECRET_PARAMETER.search(name) else value
            for name, value in parsed.query.items()
        }
        shown = parsed.set(query=hidden).render_as_string(hide_password=True)
        return shown.replace("=%2A%2A%2A", "=***")  # the mask as the user part's reads
    except ArgumentError:
        # Not parseable, so no password can be located in it: print only the scheme.
        return url.split(":", 1)[0] + "://…"


# Query parameters whose value is a credential, by name (password, sslpassword, ...).
_SECRET_PARAMETER = re.compile(r"pass|secret|token", re.IGNORECASE)


def build_engine(url: str) -> Engine:
    """Create (without connecting) the engine for ``url``; see ``normalise_url``."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(
        parsed,
        # Drops connections the server closed (restart, failover) instead of failing a
        # request with them.
        pool_pre_ping=True,
        # Fewer than SQLite's: each is a server process, and N nodes share max_connections.
        pool_size=10,
        max_overflow=30,
        connect_args={
            "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
            "application_name": "berkas",
        },
    )


# Upper bounds (seconds) of the write-lock wait histogram. SQLite's busy handler sleeps
# 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50 then 100 ms between tries (busyTimeout's delays
# in sqlite3.c), so an uncontended BEGIN IMMEDIATE lands in the first bucket and a queued
# one in the millisecond buckets.
WRITE_WAIT_BOUNDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0)


class LockWaitCounter:
    """The time each ``BEGIN IMMEDIATE`` took on one SQLite engine, i.e. its wait for the
    file's write lock (``serve --workers N`` runs N processes, each with its own group
    commit, queueing on that one lock; README "Workers" reports what it costs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._within = [0] * len(WRITE_WAIT_BOUNDS)
        self._count = 0
        self._seconds = 0.0

    def add(self, seconds: float) -> None:
        with self._lock:
            self._count += 1
            self._seconds += seconds
            for i, bound in enumerate(WRITE_WAIT_BOUNDS):
                if seconds <= bound:
                    self._within[i] += 1

    def snapshot(self) -> WriteLockWaits:
        with self._lock:
            return WriteLockWaits(
                count=self._count,
                seconds=self._seconds,
                buckets=tuple(zip(WRITE_WAIT_BOUNDS, self._within, strict=True)),
            )


_LOCK_WAITS: weakref.WeakKeyDictionary[Engine, LockWaitCounter] = weakref.WeakKeyDictionary()


def lock_waits(engine: Engine) -> LockWaitCounter | None:
    """The write-lock waits of an SQLite engine made by ``build_engine``; None otherwise."""
    return _LOCK_WAITS.get(engine)


def _sqlite_engine(url: URL) -> Engine:
    # QueuePool (the default for SQLite files) with check_same_thread off: a connection
    # is used by one thread at a time but may be checked out by different threads.
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
    )
    waits = _LOCK_WAITS[engine] = LockWaitCounter()
    event.listen(engine, "connect", _sqlite_on_connect)

    def begin(connection: Connection) -> None:
        _sqlite_begin(connection, waits)

    event.listen(engine, "begin", begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from Python's sqlite3 module, which would otherwise
    # emit no BEGIN before SELECT or DDL (migrations would not be atomic); _sqlite_begin
    # emits it instead. This is SQLAlchemy's documented recipe:
    # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#sqlite-transactions
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Wait for the write lock rather than failing at once when another thread or
        # process is writing: https://www.sqlite.org/pragma.html#pragma_busy_timeout
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        # In WAL mode only synchronous=FULL makes a committed transaction durable across
        # power loss; NORMAL "might roll back following a power loss or system crash".
        # The row must be on disk before the 200 goes out.
        # https://www.sqlite.org/pragma.html#pragma_synchronous
        cursor.execute("PRAGMA synchronous = FULL")
        # SQLite enforces foreign keys only when asked, per connection.
        # https://www.sqlite.org/foreignkeys.html#fk_enable
        cursor.execute("PRAGMA foreign_keys = ON")
        # A deleted row's bytes are overwritten, not left in a free page: deleting a
        # document destroys its sealed data key in the file too (crypto-shredding,
        # docs/design.md 6.6). https://www.sqlite.org/pragma.html#pragma_secure_delete
        cursor.execute("PRAGMA secure_delete = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    # WAL: readers never block the writer nor the writer readers.
    # https://www.sqlite.org/wal.html (not for network file systems). The mode is
    # persistent, so only the first connection to a new file switches it; that switch
    # needs an exclusive lock and reports "database is locked" without consulting
    # busy_timeout when another connection is switching at the same moment, hence the
    # bounded retry (seen with two nodes migrating a fresh file at once).
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL").fetchone()
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_begin(connection: Connection, waits: LockWaitCounter) -> None:
    # Writers take the write lock up front (BEGIN IMMEDIATE) so they queue on busy_timeout;
    # a deferred transaction that reads first and then writes can instead fail at once with
    # SQLITE_BUSY_SNAPSHOT in WAL mode. https://www.sqlite.org/lang_transaction.html
    options = connection.get_execution_options()
    if options.get(WRITE_OPTION):
        started = time.perf_counter()
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        waits.add(time.perf_counter() - started)
    elif not options.get(READ_OPTION):
        connection.exec_driver_sql("BEGIN")


# How often truncate_wal retries a checkpoint that readers or a writer kept from finishing.
_CHECKPOINT_ATTEMPTS = 5


def truncate_wal(engine: Engine) -> bool:
    """On SQLite, copy the write-ahead log into the database file and truncate it to zero
    bytes (``PRAGMA wal_checkpoint(TRUNCATE)``); a no-op (True) elsewhere.

    Run after a delete that must destroy a value: the WAL keeps every page as each
    transaction wrote it (the upload's page with a data key included) until a checkpoint
    restarts it, and ``secure_delete`` only zeroes the database file's own pages
    (https://www.sqlite.org/wal.html#ckpt, https://www.sqlite.org/pragma.html#pragma_wal_checkpoint).
    The checkpoint waits (busy_timeout) for the writer and for readers of older snapshots;
    False when it still could not finish, which the caller logs.
    """
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        for _ in range(_CHECKPOINT_ATTEMPTS):
            busy, _frames, _copied = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return True
            time.sleep(0.05)
    return False


def compact(engine: Engine) -> None:
    """On SQLite, rewrite the file so no freed page keeps an old value (VACUUM) and empty
    the write-ahead log; a no-op elsewhere.

    Run after values were sealed or resealed: SQLite leaves overwritten content in free
    pages and in the WAL until they are reused (https://www.sqlite.org/lang_vacuum.html,
    https://www.sqlite.org/pragma.html#pragma_wal_checkpoint), where the key they were
    sealed with before (or no key) would still open them.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        # VACUUM cannot run inside a transaction; the driver-level connection is in
        # autocommit (_sqlite_on_connect takes transaction control from pysqlite).
        raw = connection.connection.driver_connection
        assert raw is not None
        try:
            raw.execute("VACUUM")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            raise Unavailable(
                f"could not compact the SQLite database after sealing secrets: {error}",
                code=Code.DATABASE_UNAVAILABLE,
            ) from error
