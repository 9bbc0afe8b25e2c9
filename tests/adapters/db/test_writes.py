"""The SQLite group commit: concurrent writes share one transaction and one fsync, and
nobody is told a write is stored before it is committed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, func, insert, select
from sqlalchemy.exc import IntegrityError

from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.tables import pending_blobs
from berkas.adapters.db.writes import GroupCommit
from berkas.core.errors import Unavailable
from tests.adapters.db.conftest import SEALER

NOW = datetime(2026, 12, 2, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqlDatabase]:
    db = SqlDatabase.from_url(f"sqlite:///{tmp_path / 'berkas.db'}", sealer=SEALER)
    db.migrate()
    yield db
    db.close()


def keys_in(db: SqlDatabase) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(pending_blobs)).scalar_one())


def test_concurrent_writes_are_committed_in_fewer_transactions_than_writers(
    database: SqlDatabase,
) -> None:
    commits: list[int] = []
    event.listen(database.engine, "commit", lambda _conn: commits.append(1))
    barrier = threading.Barrier(32)

    def write(i: int) -> None:
        barrier.wait()
        database.files.reserve_key(f"k/{i}", 1, NOW)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(write, range(32)))

    assert keys_in(database) == 32
    assert 1 <= len(commits) < 32  # batched: far fewer fsyncs than writes


def test_a_write_is_visible_to_everyone_once_the_call_returns(database: SqlDatabase) -> None:
    database.files.reserve_key("k/1", 1, NOW)
    other = SqlDatabase.from_url(str(database.engine.url), sealer=SEALER)
    try:
        assert other.files.reserved_keys(1) == ["k/1"]
    finally:
        other.close()


def test_one_callers_failure_does_not_undo_the_others_in_its_batch(tmp_path: Path) -> None:
    # Callers lending the writer's connection (transaction) and callers handing it work
    # (run) share batches; each one's failure undoes its own rows only, and reaches it as
    # the exception it raised.
    db = SqlDatabase.from_url(f"sqlite:///{tmp_path / 'b.db'}", sealer=SEALER)
    db.migrate()
    group = GroupCommit(db.engine)
    barrier = threading.Barrier(16)

    def rows(connection: Connection, i: int) -> str:
        for part in ("a", "b"):
            connection.execute(
                insert(pending_blobs).values(key=f"k/{i}/{part}", node_id=1, created_at=NOW)
            )
        if i % 2:
            raise ValueError(f"caller {i} changes its mind")
        return f"stored {i}"

    def write(i: int) -> str:
        barrier.wait()
        try:
            if i % 4 < 2:
                with group.transaction() as connection:
                    return rows(connection, i)
            return group.run(lambda connection: rows(connection, i))
        except ValueError as exc:
            return f"rolled back: {exc}"

    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(write, range(16)))
        assert outcomes == [
            f"stored {i}" if i % 2 == 0 else f"rolled back: caller {i} changes its mind"
            for i in range(16)
        ]
        assert sorted(db.files.reserved_keys(1)) == sorted(
            f"k/{i}/{part}" for i in range(0, 16, 2) for part in ("a", "b")
        )
    finally:
        group.close()
        db.close()


def test_a_failing_one_statement_write_undoes_itself_and_nothing_else(tmp_path: Path) -> None:
    # Without its savepoint, a single statement that fails part-way (its second row
    # clashes) leaves none of its rows, and the batch around it commits.
    db = SqlDatabase.from_url(f"sqlite:///{tmp_path / 'o.db'}", sealer=SEALER)
    db.migrate()
    db.files.reserve_key("taken", 1, NOW)
    group = GroupCommit(db.engine)
    barrier = threading.Barrier(12)

    def write(i: int) -> str:
        second = "taken" if i % 3 == 0 else f"k/{i}/b"
        rows = [
            {"key": f"k/{i}/a", "node_id": 1, "created_at": NOW},
            {"key": second, "node_id": 1, "created_at": NOW},
        ]
        barrier.wait()
        try:
            group.run(
                lambda connection: connection.execute(insert(pending_blobs).values(rows)),
                one_statement=True,
            )
        except IntegrityError:
            return "refused"
        return "stored"

    try:
        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(write, range(12)))
        assert outcomes == ["refused" if i % 3 == 0 else "stored" for i in range(12)]
        assert sorted(db.files.reserved_keys(1)) == sorted(
            ["taken"] + [f"k/{i}/{p}" for i in range(12) if i % 3 for p in ("a", "b")]
        )
    finally:
        group.close()
        db.close()


def test_work_handed_to_the_writer_returns_only_once_committed(tmp_path: Path) -> None:
    db = SqlDatabase.from_url(f"sqlite:///{tmp_path / 'c.db'}", sealer=SEALER)
    db.migrate()
    group = GroupCommit(db.engine)
    committed: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: committed.append(1))
    try:

        def work(connection: Connection) -> int:
            connection.execute(insert(pending_blobs).values(key="k/1", node_id=1, created_at=NOW))
            # A nested write (another repository's) joins the same savepoint.
            with group.transaction() as nested:
                nested.execute(insert(pending_blobs).values(key="k/2", node_id=1, created_at=NOW))
            assert not committed
            return 42

        assert group.run(work) == 42
        assert committed
        assert sorted(db.files.reserved_keys(1)) == ["k/1", "k/2"]
    finally:
        group.close()
        db.close()


def test_a_failed_commit_tells_every_caller_of_the_batch_and_stores_nothing(
    database: SqlDatabase,
) -> None:
    fail = threading.Event()
    fail.set()

    def refuse(connection: Connection) -> None:
        if fail.is_set():
            fail.clear()
            raise OSError("disk I/O error")

    event.listen(database.engine, "commit", refuse)
    with pytest.raises(Unavailable) as caught:
        database.files.reserve_key("k/lost", 1, NOW)
    assert caught.value.code == "database_unavailable"
    event.remove(database.engine, "commit", refuse)

    assert keys_in(database) == 0
    database.files.reserve_key("k/kept", 1, NOW)  # the writer goes on after a failure
    assert database.files.reserved_keys(1) == ["k/kept"]


def test_an_unreachable_database_is_unavailable_not_a_hang(tmp_path: Path) -> None:
    db = SqlDatabase.from_url(f"sqlite:///{tmp_path / 'missing' / 'x.db'}", sealer=SEALER)
    try:
        with pytest.raises(Unavailable):
            db.files.reserve_key("k", 1, NOW)
    finally:
        db.close()
