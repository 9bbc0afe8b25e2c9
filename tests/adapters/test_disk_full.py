"""A full disk under each local adapter (issue 9, defect 2): SQLite's SQLITE_FULL and the
blob store's ENOSPC become ``InsufficientStorage`` (507), not an unreachable database or
a crash; nothing partial is left, and the same objects work again once space is freed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import exc

from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.repositories import translate_errors
from berkas.adapters.storage.local import LocalBlobStore
from berkas.core.codes import Code
from berkas.core.errors import InsufficientStorage, Unavailable
from berkas.core.models import Client
from tests.adapters.db.conftest import SEALER
from tests.support import samples
from tests.support.tmpfs import fill, small_disk

NOW = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", 8) as mounted:
        yield mounted


def fill_rows(database: SqlDatabase) -> None:
    # Enough rows that SQLite needs new pages, whatever its files have spare.
    for n in range(2000):
        database.files.reserve_key(f"k/{n:04d}-{'x' * 200}", 1, NOW)


def test_sqlite_full_is_insufficient_storage_and_recovers(disk: Path) -> None:
    database = SqlDatabase.from_url(f"sqlite:///{disk / 'berkas.db'}", sealer=SEALER)
    try:
        database.migrate()
        database.check()
        filler = disk / "filler"
        fill(filler)
        with pytest.raises(InsufficientStorage) as raised:
            fill_rows(database)
        assert raised.value.code is Code.INSUFFICIENT_STORAGE
        assert str(disk) not in raised.value.message
        with pytest.raises(InsufficientStorage):
            database.check()  # /readyz: reads still work, but the disk is full

        filler.unlink()
        database.check()
        client = Client("BRN-0001-10791114622547", "SK-test-0001", True, NOW)
        database.clients.add(client)
        assert database.clients.get(client.client_id) == client
    finally:
        database.close()


def test_local_store_full_is_insufficient_storage_and_leaves_no_temp(
    disk: Path, tmp_path: Path
) -> None:
    store = LocalBlobStore(disk / "blobs")
    source = tmp_path / "upload.jpg"  # another file system: the store must copy it
    source.write_bytes(samples.jpeg(width=512, height=512) * 8)
    filler = disk / "filler"
    fill(filler)
    with pytest.raises(InsufficientStorage) as raised:
        store.put_file("a/b/one.jpg", source, "image/jpeg")
    assert str(disk) not in raised.value.message
    assert list((disk / "blobs").rglob("*.jpg")) == []
    assert list((disk / "blobs" / ".tmp").iterdir()) == []
    with pytest.raises(InsufficientStorage):
        store.check()

    filler.unlink()
    store.check()
    store.put_file("a/b/one.jpg", source, "image/jpeg")
    assert b"".join(store.open("a/b/one.jpg")) == source.read_bytes()


def test_postgresql_disk_full_is_insufficient_storage_and_other_failures_are_not() -> None:
    # PostgreSQL's disk_full (SQLSTATE 53100), as psycopg raises it and SQLAlchemy wraps
    # it; a full PostgreSQL disk is not something a test can cheaply cause on a server.
    psycopg_errors = pytest.importorskip("psycopg.errors")
    full = exc.OperationalError("INSERT ...", {}, psycopg_errors.DiskFull("could not extend"))
    with pytest.raises(InsufficientStorage), translate_errors():
        raise full
    down = exc.OperationalError("SELECT 1", {}, psycopg_errors.AdminShutdown("terminating"))
    with pytest.raises(Unavailable) as raised, translate_errors():
        raise down
    assert raised.value.code is Code.DATABASE_UNAVAILABLE
