"""Fixtures: every metadata store implementation, fresh (and migrated), one per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.memory import MemoryDatabase
from berkas.adapters.sealing import MasterKey, Sealer
from berkas.core.ports import Database
from tests.support.postgres import postgres_url

SQL_BACKENDS = ["sqlite", "postgresql"]
# A fixed master key for the suites: sealed values must open again after a reopen.
SEALER = Sealer(MasterKey(bytes(range(32))), source="the test master key")


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """One PostgreSQL database for the whole session; each test wipes it first."""
    with postgres_url() as url:
        yield url


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[SqlDatabase]:
    """An empty, unmigrated SQLite file database."""
    database = SqlDatabase.from_url(f"sqlite:///{tmp_path / 'berkas.db'}", sealer=SEALER)
    yield database
    database.close()


@pytest.fixture
def postgresql_database(postgres_database_url: str) -> Iterator[SqlDatabase]:
    """The session's PostgreSQL database, emptied and unmigrated."""
    database = SqlDatabase.from_url(postgres_database_url, sealer=SEALER)
    with database.engine.begin() as connection:
        # Every table, whatever later migrations add.
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    yield database
    database.close()


@pytest.fixture(params=SQL_BACKENDS)
def sql_database(request: pytest.FixtureRequest) -> SqlDatabase:
    """An empty, unmigrated SQL database on each backend."""
    database: SqlDatabase = request.getfixturevalue(f"{request.param}_database")
    return database


@pytest.fixture(params=["memory", *SQL_BACKENDS])
def database(request: pytest.FixtureRequest) -> Database:
    """A fresh store: the in-memory twin, or a migrated SQL database."""
    if request.param == "memory":
        return MemoryDatabase()
    sql: SqlDatabase = request.getfixturevalue(f"{request.param}_database")
    sql.migrate()
    return sql
