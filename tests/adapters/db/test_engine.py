"""Which database URLs berkas accepts, and how it refuses the rest."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path

import pytest

from berkas import install_hint
from berkas.adapters.db.engine import (
    WRITE_OPTION,
    WRITE_WAIT_BOUNDS,
    build_engine,
    display_url,
    lock_waits,
    normalise_url,
    sqlite_file,
)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:////var/lib/berkas/berkas.db", "sqlite+pysqlite"),
        ("postgresql://berkas:secret@db:5432/berkas", "postgresql+psycopg"),
        ("postgres://berkas@db/berkas", "postgresql+psycopg"),
        ("postgresql+psycopg://berkas@db/berkas", "postgresql+psycopg"),
    ],
)
def test_supported_urls_pick_berkas_drivers(url: str, driver: str) -> None:
    assert normalise_url(url).drivername == driver


@pytest.mark.parametrize(
    "url",
    ["sqlite:///relative/berkas.db", "sqlite://", "sqlite:///:memory:"],
)
def test_sqlite_needs_an_absolute_file_path(url: str) -> None:
    with pytest.raises(ValueError, match=r"absolute SQLite file path; expected sqlite:////"):
        normalise_url(url)


@pytest.mark.parametrize(
    "url",
    ["mysql://root@db/berkas", "postgresql+psycopg2://db/berkas", "not a url"],
)
def test_other_databases_are_refused_with_the_accepted_forms(url: str) -> None:
    with pytest.raises(ValueError, match=r"postgresql://"):
        normalise_url(url)


def test_missing_psycopg_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is how Python marks a module as not importable.
    monkeypatch.setitem(sys.modules, "psycopg", None)

    with pytest.raises(RuntimeError, match=re.escape(install_hint("postgres"))):
        normalise_url("postgresql://berkas@db/berkas")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://berkas:hunter2@db:5432/berkas", "postgresql://berkas:***@db:5432/berkas"),
        ("postgresql://berkas:p%40ss@db/berkas", "postgresql://berkas:***@db/berkas"),
        ("postgresql://berkas@db/berkas", "postgresql://berkas@db/berkas"),
        ("sqlite:////var/lib/berkas/berkas.db", "sqlite:////var/lib/berkas/berkas.db"),
        # libpq reads a password from the query too.
        (
            "postgresql://berkas@db/berkas?password=hunter2&sslmode=require",
            "postgresql://berkas@db/berkas?password=***&sslmode=require",
        ),
        (
            "postgresql://berkas:x@db/berkas?sslpassword=hunter2",
            "postgresql://berkas:***@db/berkas?sslpassword=***",
        ),
    ],
)
def test_a_printed_database_url_never_shows_the_password(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_sqlite_file_names_the_file_a_connect_would_create() -> None:
    assert sqlite_file("sqlite:////var/lib/berkas/berkas.db") == Path("/var/lib/berkas/berkas.db")
    assert sqlite_file("postgresql://berkas@db/berkas") is None
    with pytest.raises(ValueError, match="not supported"):
        sqlite_file("mysql://db/berkas")


def test_a_writer_queued_behind_another_process_is_counted_with_its_wait(
    tmp_path: Path,
) -> None:
    # Two engines on one file stand for two workers of a node: the second's BEGIN
    # IMMEDIATE waits until the first commits, and its counter says so.
    url = f"sqlite:///{tmp_path / 'w.db'}"
    first, second = build_engine(url), build_engine(url)
    writer = {WRITE_OPTION: True}
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with first.execution_options(**writer).begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    # Let the holder keep the lock while the second writer is already queued.
    threading.Timer(0.2, release.set).start()
    with second.execution_options(**writer).begin() as connection:
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
    holder.join(10)

    queued, holding = lock_waits(second), lock_waits(first)
    assert queued is not None
    assert holding is not None
    waited = queued.snapshot()
    assert waited.count == 1
    # It waited for the holder's commit: not within the uncontended first bucket.
    assert dict(waited.buckets)[WRITE_WAIT_BOUNDS[0]] == 0
    assert waited.seconds > WRITE_WAIT_BOUNDS[0]
    assert holding.snapshot().count == 1  # the holder's own begin, counted on its engine
    # Reads take no write lock and are not counted.
    with second.connect() as connection:
        connection.exec_driver_sql("SELECT x FROM t").all()
    assert lock_waits(second).snapshot().count == 1  # type: ignore[union-attr]
    first.dispose()
    second.dispose()


def test_postgresql_engines_have_no_write_lock_to_wait_for() -> None:
    assert lock_waits(build_engine("postgresql://u:p@127.0.0.1:1/db")) is None
