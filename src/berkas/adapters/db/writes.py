"""How the repositories write: one transaction per call, or a group commit on SQLite.

SQLite has one writer at a time, and with ``synchronous=FULL`` every commit is an fsync
(https://www.sqlite.org/pragma.html#pragma_synchronous). Concurrent uploads each taking
the write lock for their own small transaction spend their time queueing for that lock
and for the disk. ``GroupCommit`` does what databases do for their own log (PostgreSQL's
``commit_delay``, InnoDB's group commit): one writer thread runs the writes of every
caller waiting at that moment inside one transaction, each in its own SAVEPOINT, and
commits them with one fsync. A caller returns only after that commit, so nothing is
acknowledged before it is durable: a kill -9 loses nothing a caller was told was stored.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, TypeVar, cast

from sqlalchemy import Connection, Engine

from berkas.adapters.db.engine import WRITE_OPTION
from berkas.core.codes import Code
from berkas.core.errors import InsufficientStorage, Unavailable, is_disk_full

T = TypeVar("T")

# Enough to cover every request thread (anyio's default limiter is 40) in one batch.
MAX_BATCH = 64


class Writes(Protocol):
    """Gives a repository a connection inside a write transaction."""

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def run(self, work: Callable[[Connection], T], *, one_statement: bool = False) -> T:
        """``work(connection)`` inside a write transaction, its result once committed.

        ``one_statement``: ``work`` writes with a single statement (reads aside), which
        the database undoes by itself if it fails, so it needs no SAVEPOINT of its own.
        """
        ...

    def close(self) -> None: ...


class DirectWrites:
    """Each write is its own transaction (PostgreSQL runs concurrent writers itself)."""

    def __init__(self, engine: Engine) -> None:
        # Same pool; on SQLite transactions from here start with BEGIN IMMEDIATE.
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._writer.begin() as connection:
            yield connection

    def run(self, work: Callable[[Connection], T], *, one_statement: bool = False) -> T:
        with self.transaction() as connection:
            return work(connection)

    def close(self) -> None:
        """Nothing of its own to release."""


class _Ticket:
    """One caller's place in a batch: either a block of the caller's own (the writer
    lends it the connection: ``turn``, then ``done``), or ``work`` the writer runs."""

    __slots__ = (
        "committed",
        "connection",
        "done",
        "error",
        "one_statement",
        "raised",
        "result",
        "turn",
        "work",
    )

    def __init__(
        self, work: Callable[[Connection], object] | None = None, *, one_statement: bool = False
    ) -> None:
        self.work = work
        self.one_statement = one_statement
        if work is None:
            self.turn = threading.Event()  # the writer lends the caller its connection
            self.done = threading.Event()  # the caller has finished with it
        self.committed = threading.Event()  # the batch is committed (or failed)
        self.connection: Connection | None = None
        self.error: BaseException | None = None  # the batch failed: begin or commit
        self.raised: BaseException | None = None  # ``work`` raised (its savepoint undone)
        self.result: object = None


_STOP = _Ticket()


class GroupCommit:
    """Writes of concurrent callers batched into one transaction by one writer thread."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Ticket] = queue.SimpleQueue()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside the current batch's transaction, for this caller alone.

        The caller's statements run in a SAVEPOINT: if its block raises (a unique
        violation, say), only its own changes are rolled back. On leaving the block the
        caller waits for the batch to commit; a failed commit raises ``Unavailable``.
        """
        nested: Connection | None = getattr(self._local, "connection", None)
        if nested is not None:  # a write inside a write: part of the same savepoint
            with nested.begin_nested():
                yield nested
            return
        ticket = _Ticket()
        self._start()
        self._queue.put(ticket)
        ticket.turn.wait()
        if ticket.connection is None:  # the batch could not begin
            raise unavailable(ticket.error) from ticket.error
        connection = ticket.connection
        self._local.connection = connection
        try:
            with connection.begin_nested():
                yield connection
        finally:
            # Raised or not, the writer gets its connection back (a raising caller's
            # savepoint is rolled back; the rest of the batch goes on).
            self._local.connection = None
            ticket.done.set()
        ticket.committed.wait()
        if ticket.error is not None:
            raise unavailable(ticket.error) from ticket.error

    def run(self, work: Callable[[Connection], T], *, one_statement: bool = False) -> T:
        """``work(connection)`` run by the writer in the current batch, in its own
        SAVEPOINT; returns its result once the batch is committed, or raises what it
        raised (only its own changes undone), or ``Unavailable`` when the batch failed.

        Cheaper than ``transaction`` for a hot write: the caller sleeps once (until the
        commit) instead of taking turns with the writer thread, two thread hand-offs
        fewer per write.

        ``one_statement``: ``work`` writes with one statement, so it runs without the
        SAVEPOINT and RELEASE (two statements more, most of a small write's cost). SQLite
        undoes a failed statement by itself and keeps the transaction: "the ABORT
        resolution algorithm ... backs out any prior changes that the current SQL
        statement made but changes caused by prior statements within the same
        transaction are preserved" (https://www.sqlite.org/lang_conflict.html), which is
        what the savepoint would have done for it.
        """
        nested: Connection | None = getattr(self._local, "connection", None)
        if nested is not None:  # a write inside a write: part of the same savepoint
            with nested.begin_nested():
                return work(nested)
        ticket = _Ticket(work, one_statement=one_statement)
        self._start()
        self._queue.put(ticket)
        ticket.committed.wait()
        if ticket.raised is not None:
            raise ticket.raised
        if ticket.error is not None:
            raise unavailable(ticket.error) from ticket.error
        return cast(T, ticket.result)

    def close(self) -> None:
        """Stop the writer thread once the batches queued so far are committed."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout=30)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="berkas-group-commit", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            self._batch(first)

    def _batch(self, first: _Ticket) -> None:
        batch = [first]
        try:
            connection = self._writer.connect()
        except Exception as exc:  # the database is unreachable: this caller is told
            _refuse(first, exc)
            return
        try:
            transaction = connection.begin()
        except Exception as exc:
            connection.close()
            _refuse(first, exc)
            return
        ticket: _Ticket | None = first
        while ticket is not None:
            ticket.connection = connection
            if ticket.work is not None:
                self._work(ticket, connection)
            else:
                ticket.turn.set()
                ticket.done.wait()
            ticket = self._next(len(batch))
            if ticket is not None:
                batch.append(ticket)
        error: BaseException | None = None
        try:
            transaction.commit()
        except Exception as exc:
            error = exc
            # A failed COMMIT may leave SQLite's transaction open: drop the connection
            # (closing it rolls back) so the next batch cannot start inside it.
            connection.invalidate()
        finally:
            connection.close()
        for waiting in batch:
            waiting.error = error
            waiting.committed.set()

    def _work(self, ticket: _Ticket, connection: Connection) -> None:
        assert ticket.work is not None
        self._local.connection = connection  # its own nested writes join its savepoint
        try:
            if ticket.one_statement:
                ticket.result = ticket.work(connection)
            else:
                with connection.begin_nested():
                    ticket.result = ticket.work(connection)
        except BaseException as exc:  # the caller's to handle, not the writer's
            ticket.raised = exc
        finally:
            self._local.connection = None

    def _next(self, size: int) -> _Ticket | None:
        # Whoever queued while the batch ran joins it, up to the cap; a stop request
        # waits for the next round (put back, it ends the loop once this batch commits).
        if size >= self._max_batch:
            return None
        try:
            ticket = self._queue.get_nowait()
        except queue.Empty:
            return None
        if ticket is _STOP:
            self._queue.put(_STOP)
            return None
        return ticket


def _refuse(ticket: _Ticket, error: BaseException) -> None:
    # The batch could not begin: its first caller is told (the rest are still queued).
    ticket.error = error
    if ticket.work is None:
        ticket.turn.set()
    ticket.committed.set()


def unavailable(cause: BaseException | None) -> Unavailable:
    """What a driver failure means to a caller: the database's disk is full (SQLite's
    SQLITE_FULL, PostgreSQL's disk_full), or the database is unreachable."""
    if _disk_full(cause):
        return InsufficientStorage(
            "the server's storage is full, so the request could not be recorded and was "
            "not carried out; try again later.",
            code=Code.INSUFFICIENT_STORAGE,
        )
    return Unavailable(
        "The metadata database is unreachable; try again later.",
        code=Code.DATABASE_UNAVAILABLE,
    )


# SQLITE_FULL: "database or disk is full" (https://www.sqlite.org/rescode.html#full);
# SQLSTATE 53100 disk_full (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"


def _disk_full(cause: BaseException | None) -> bool:
    # SQLAlchemy wraps the driver's exception; the driver's is in ``orig``.
    driver = getattr(cause, "orig", None) or cause
    return (
        (isinstance(driver, BaseException) and is_disk_full(driver))
        or getattr(driver, "sqlite_errorcode", None) == _SQLITE_FULL
        or getattr(driver, "sqlstate", None) == _PG_DISK_FULL
    )
