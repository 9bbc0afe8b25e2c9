"""SqlDatabase on SQLite and PostgreSQL: migrations, persistence and outages."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, select, text, update

from berkas.adapters.db.database import MIGRATIONS_DIR, SqlDatabase
from berkas.adapters.db.engine import WRITE_OPTION
from berkas.adapters.db.migrations import HEAD
from berkas.adapters.db.repositories import SqlFileRepository
from berkas.adapters.db.tables import clients, metadata
from berkas.adapters.sealing import MasterKey, Sealer, SealingError, client_context
from berkas.core.errors import Unavailable
from berkas.core.models import Client, StoredFile
from tests.adapters.db.conftest import SEALER
from tests.support.fixture_server import free_port

CLIENT = Client("BRN-0001-10791114622547", "SK-test-0001", True, datetime(2025, 3, 1, tzinfo=UTC))


def test_fresh_database_needs_migrating(sql_database: SqlDatabase) -> None:
    assert sql_database.current_revision() is None
    assert sql_database.is_up_to_date() is False


def test_migrate_brings_schema_to_head_and_is_idempotent(sql_database: SqlDatabase) -> None:
    sql_database.migrate()
    sql_database.clients.add(CLIENT)

    sql_database.migrate()

    assert sql_database.current_revision() == sql_database.head_revision()
    assert sql_database.is_up_to_date() is True
    assert sql_database.clients.get(CLIENT.client_id) == CLIENT


def test_migrations_create_exactly_the_declared_tables(sql_database: SqlDatabase) -> None:
    sql_database.migrate()

    with sql_database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_rows_survive_reopening(sql_database: SqlDatabase) -> None:
    sql_database.migrate()
    sql_database.clients.add(CLIENT)
    sql_database.close()

    reopened = SqlDatabase.from_url(
        sql_database.engine.url.render_as_string(hide_password=False), sealer=SEALER
    )

    assert reopened.is_up_to_date() is True
    assert reopened.clients.get(CLIENT.client_id) == CLIENT
    reopened.close()


def test_check_passes_when_reachable(sql_database: SqlDatabase) -> None:
    sql_database.check()


def test_sqlite_in_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    database = SqlDatabase.from_url(
        f"sqlite:///{tmp_path / 'missing' / 'berkas.db'}", sealer=SEALER
    )

    with pytest.raises(Unavailable) as caught:
        database.check()
    assert caught.value.code == "database_unavailable"
    assert caught.value.__cause__ is not None

    with pytest.raises(Unavailable):
        database.clients.add(CLIENT)
    with pytest.raises(Unavailable):
        database.migrate()


def test_unreachable_postgresql_is_unavailable() -> None:
    database = SqlDatabase.from_url(
        f"postgresql://postgres@127.0.0.1:{free_port()}/berkas", sealer=SEALER
    )

    with pytest.raises(Unavailable) as caught:
        database.check()
    assert caught.value.code == "database_unavailable"

    at = datetime(2025, 3, 1, tzinfo=UTC)
    with pytest.raises(Unavailable):
        database.replays.purge_before(at, uploads_before=at)
    database.close()


def test_migrating_sqlite_leaves_durable_settings(sqlite_database: SqlDatabase) -> None:
    sqlite_database.migrate()

    with sqlite_database.engine.connect() as connection:
        journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar()
        foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
        busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()

    assert journal == "wal"
    assert synchronous == 2  # FULL
    assert foreign_keys == 1
    assert busy_timeout == 10_000


def test_nodes_migrating_at_once_both_succeed(sql_database: SqlDatabase) -> None:
    url = sql_database.engine.url.render_as_string(hide_password=False)
    nodes = [SqlDatabase.from_url(url) for _ in range(2)]
    barrier = threading.Barrier(len(nodes))
    failures: list[BaseException] = []

    def start(node: SqlDatabase) -> None:
        try:
            barrier.wait(timeout=10)
            node.migrate()
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for node in nodes:
        node.close()

    assert failures == []
    assert sql_database.is_up_to_date() is True


def test_a_client_secret_stored_in_clear_is_refused_not_used(sql_database: SqlDatabase) -> None:
    sql_database.migrate()
    with sql_database.engine.begin() as connection:
        connection.execute(
            insert(clients).values(
                client_id="BRN-X",
                secret_key="SK-chosen-by-whoever-wrote-the-row",
                enabled=True,
                created_at=datetime.now(UTC),
            )
        )
    with pytest.raises(SealingError, match=r"clients.secret_key of 'BRN-X' is stored in clear"):
        sql_database.clients.get("BRN-X")
    assert sql_database.sealed.clear_values() == [("clients.secret_key", "BRN-X")]
    # Neither a rekey nor the legacy command seals it: migration 0008 did not list it.
    assert sql_database.sealed.reseal()["client secret keys"] == 0
    with pytest.raises(SealingError, match="nothing was sealed"):
        sql_database.sealed.seal_legacy(datetime.now(UTC))
    with pytest.raises(SealingError, match="stored in clear"):
        sql_database.clients.get("BRN-X")


def test_postgresql_reads_run_outside_a_transaction_and_writes_inside_one(
    postgresql_database: SqlDatabase,
) -> None:
    # A read is one statement: in autocommit it is its own transaction (now() is the
    # statement's start), with no BEGIN and ROLLBACK round trips around it. A write must
    # still be one transaction: now() stays the same across its statements.
    postgresql_database.migrate()
    files = SqlFileRepository(postgresql_database.engine)
    same = text("SELECT now() = statement_timestamp()")
    with files._read() as connection:
        assert connection.execute(same).scalar_one() is True
    with files._write() as connection:
        first = connection.execute(text("SELECT now()")).scalar_one()
        connection.execute(text("SELECT pg_sleep(0.01)"))
        assert connection.execute(same).scalar_one() is False
        assert connection.execute(text("SELECT now()")).scalar_one() == first
    # The pooled connection a read used goes back to transactions for its next writer.
    for _ in range(3):
        with files._read() as connection:
            connection.execute(same)
        with files._write() as connection:
            connection.execute(text("SELECT pg_sleep(0.001)"))
            assert connection.execute(same).scalar_one() is False


def test_the_known_head_is_alembics_head() -> None:
    # HEAD lets a node on a current schema start without alembic; a new revision must
    # update it (else `migrate` would skip it).
    config = SqlDatabase._alembic_config()
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_a_node_on_a_current_schema_starts_without_loading_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'berkas.db'}"
    database = SqlDatabase.from_url(url, sealer=SEALER)
    database.migrate()
    database.close()
    # A fresh interpreter: this one has alembic loaded already.
    probe = (
        "import sys\n"
        "from berkas.adapters.db.database import SqlDatabase\n"
        f"db = SqlDatabase.from_url({url!r})\n"
        "db.migrate()\n"
        "assert db.is_up_to_date()\n"
        "db.close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_v0004_database_with_clients_upgrades_to_labels_and_rotation(
    sql_database: SqlDatabase,
) -> None:
    sql_database.migrate("0004")
    created = datetime(2025, 3, 1, tzinfo=UTC)
    with sql_database.engine.begin() as connection:
        # As berkas at v0004 wrote it: four columns, the secret sealed.
        connection.execute(
            text(
                "INSERT INTO clients (client_id, secret_key, enabled, created_at) "
                "VALUES (:id, :secret, :enabled, :created)"
            ),
            {
                "id": "BRN-OLD",
                "secret": SEALER.seal(b"SK-from-v0004", client_context("BRN-OLD")),
                "enabled": True,
                "created": created,
            },
        )

    sql_database.migrate()

    assert sql_database.current_revision() == "0010" == sql_database.head_revision()
    assert sql_database.clients.get("BRN-OLD") == Client("BRN-OLD", "SK-from-v0004", True, created)
    at = created + timedelta(days=1)
    sql_database.clients.rotate_secret("BRN-OLD", "SK-new", at, at + timedelta(hours=24))
    assert sql_database.clients.set_label("BRN-OLD", "Toko Maju") is True
    client = sql_database.clients.get("BRN-OLD")
    assert client is not None
    assert (client.secret_key, client.previous_secret_key, client.label) == (
        "SK-new",
        "SK-from-v0004",
        "Toko Maju",
    )


def test_the_previous_secret_is_sealed_and_bound_to_its_column(sql_database: SqlDatabase) -> None:
    sql_database.migrate()
    sql_database.clients.add(CLIENT)
    at = datetime(2025, 3, 2, tzinfo=UTC)
    sql_database.clients.rotate_secret(CLIENT.client_id, "SK-new-0002", at, at + timedelta(hours=1))
    with sql_database.engine.connect() as connection:
        row = connection.execute(select(clients)).one()
    assert row.previous_secret_key.startswith("sealed:v1:")
    assert "SK-test-0001" not in row.previous_secret_key
    assert "SK-new-0002" not in row.secret_key

    # The old secret's sealed value put where the current one lives does not open: a row
    # edit cannot make a replaced secret current again (its context differs).
    with sql_database.engine.begin() as connection:
        connection.execute(update(clients).values(secret_key=row.previous_secret_key))
    with pytest.raises(SealingError, match="integrity check"):
        sql_database.clients.get(CLIENT.client_id)


def test_secrets_status_counts_and_rekey_reseals_previous_secrets(
    sql_database: SqlDatabase,
) -> None:
    sql_database.migrate()
    sql_database.clients.add(CLIENT)
    sql_database.clients.add(Client("BRN-NEVER-ROTATED", "SK-x", True, CLIENT.created_at))
    at = datetime(2025, 3, 2, tzinfo=UTC)
    sql_database.clients.rotate_secret(CLIENT.client_id, "SK-new", at, at + timedelta(hours=1))

    report = sql_database.sealed.by_master_key()
    assert report["previous client secret keys"] == {SEALER.current.kid: 1}
    assert report["client secret keys"] == {SEALER.current.kid: 2}

    # A new master key first, the old one still readable: rekey reseals the previous
    # secret too, and it still opens (under its own context).
    newer = Sealer(MasterKey(bytes(range(1, 33))), [SEALER.current], source="test")
    url = sql_database.engine.url.render_as_string(hide_password=False)
    rekeyed = SqlDatabase.from_url(url, sealer=newer)
    try:
        assert rekeyed.sealed.reseal()["previous client secret keys"] == 1
        assert rekeyed.sealed.by_master_key()["previous client secret keys"] == {
            newer.current.kid: 1
        }
        client = rekeyed.clients.get(CLIENT.client_id)
        assert client is not None
        assert (client.secret_key, client.previous_secret_key) == ("SK-new", "SK-test-0001")
    finally:
        rekeyed.close()


def test_v0005_downgrades_keeping_clients_files_and_current_secrets(
    sql_database: SqlDatabase,
) -> None:
    sql_database.migrate()
    sql_database.clients.add(CLIENT)
    at = datetime(2025, 3, 2, tzinfo=UTC)
    sql_database.clients.rotate_secret(CLIENT.client_id, "SK-new", at, at + timedelta(hours=1))
    sql_database.files.add(
        StoredFile(
            "DCM-0001-1740817815123",
            CLIENT.client_id,
            "LOGO",
            None,
            "k/1.png",
            "image/png",
            1,
            "ab" * 32,
            1,
            1,
            at,
        )
    )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))

    with sql_database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")

    assert sql_database.current_revision() == "0004"
    with sql_database.engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM clients")).mappings().one()
        assert connection.execute(text("SELECT count(*) FROM files")).scalar_one() == 1
    assert set(row) == {"client_id", "secret_key", "enabled", "created_at"}
    assert SEALER.open(row["secret_key"], client_context(CLIENT.client_id)) == b"SK-new"
    sql_database.migrate()  # and up again
    assert sql_database.clients.get(CLIENT.client_id) == Client(
        CLIENT.client_id, "SK-new", True, CLIENT.created_at
    )


def test_a_rotation_waits_for_one_in_flight_and_keeps_its_secret(
    sql_database: SqlDatabase,
) -> None:
    # Each rotation prints its secret. One committing while another is in flight: the
    # later one must read the row after it (FOR UPDATE / SQLite's one writer) and keep
    # the earlier one's secret as the previous one, not the original nobody uses now.
    sql_database.migrate()
    sql_database.clients.add(CLIENT)
    at = datetime(2025, 3, 2, tzinfo=UTC)
    done = threading.Event()
    url = sql_database.engine.url.render_as_string(hide_password=False)
    other = SqlDatabase.from_url(url, sealer=SEALER)  # another node

    def rotate_second() -> None:
        sql_database.clients.rotate_secret(
            CLIENT.client_id, "SK-second", at, at + timedelta(hours=1)
        )
        done.set()

    try:
        # A write transaction as the repositories open one (BEGIN IMMEDIATE on SQLite).
        with other.engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
            connection.execute(
                select(clients).where(clients.c.client_id == CLIENT.client_id).with_for_update()
            )
            connection.execute(
                update(clients).values(
                    secret_key=SEALER.seal(b"SK-first", client_context(CLIENT.client_id))
                )
            )
            rotation = threading.Thread(target=rotate_second)
            rotation.start()
            assert not done.wait(0.5)  # it waits for the transaction in flight
        rotation.join(timeout=30)
    finally:
        other.close()

    client = sql_database.clients.get(CLIENT.client_id)
    assert client is not None
    assert (client.secret_key, client.previous_secret_key) == ("SK-second", "SK-first")
