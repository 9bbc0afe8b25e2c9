"""Sealed columns on both SQL backends: nothing clear is ever sealed but what an older
release wrote (once, by an explicit command); replay answers are sealed to their request;
data keys are bound to their row; a delete leaves no copy of the key in SQLite's files."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.tables import (
    clients,
    files,
    legacy_clear_secrets,
    replays,
    signing_keys,
)
from berkas.adapters.sealing import (
    MasterKey,
    SealedDataKeys,
    Sealer,
    SealingError,
    legacy_data_key_context,
)
from berkas.core.errors import BerkasError
from berkas.core.models import EventKind, FileEvent, ReplayRecord
from tests.adapters.db.conftest import SEALER
from tests.adapters.db.test_contract import make_client, make_file

T0 = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


def _clear_client(database: SqlDatabase, client_id: str, secret: str) -> None:
    with database.engine.begin() as connection:
        connection.execute(
            insert(clients).values(
                client_id=client_id, secret_key=secret, enabled=True, created_at=T0
            )
        )


def test_seal_legacy_seals_what_0008_found_in_clear_once_and_nothing_else(
    sql_database: SqlDatabase,
) -> None:
    sql_database.migrate("0007")
    _clear_client(sql_database, "BRN-OLD", "SK-from-an-older-release")
    sql_database.migrate()  # 0008 lists BRN-OLD
    _clear_client(sql_database, "BRN-PLANTED", "SK-chosen-by-a-database-writer")

    assert sql_database.sealed.legacy_clear() == ["BRN-OLD"]
    assert sql_database.sealed.clear_values() == [
        ("clients.secret_key", "BRN-OLD"),
        ("clients.secret_key", "BRN-PLANTED"),
    ]
    assert sql_database.sealed.seal_legacy(T0) == ["BRN-OLD"]

    old = sql_database.clients.get("BRN-OLD")
    assert old is not None
    assert old.secret_key == "SK-from-an-older-release"
    with pytest.raises(SealingError, match="'BRN-PLANTED' is stored in clear"):
        sql_database.clients.get("BRN-PLANTED")
    assert sql_database.sealed.clear_values() == [("clients.secret_key", "BRN-PLANTED")]
    # Once: a second run is refused, even with a row slipped into the list since.
    with sql_database.engine.begin() as connection:
        connection.execute(
            insert(legacy_clear_secrets).values(client_id="BRN-PLANTED", found_at=T0)
        )
    with pytest.raises(SealingError, match="done once only"):
        sql_database.sealed.seal_legacy(T0)
    with pytest.raises(SealingError, match="stored in clear"):
        sql_database.clients.get("BRN-PLANTED")


def test_a_clear_signing_key_or_data_key_is_named_not_sealed(sql_database: SqlDatabase) -> None:
    sql_database.migrate()
    sql_database.clients.add(make_client())
    with sql_database.engine.begin() as connection:
        connection.execute(
            insert(signing_keys).values(
                kid="planted", created_at=T0, retired_at=T0, private_key="-----BEGIN PRIVATE KEY"
            )
        )
    sql_database.files.add(make_file(data_key="a-clear-data-key"))

    assert sql_database.sealed.clear_values() == [
        ("files.data_key", "DCM-0001-1740817815123"),
        ("signing_keys.private_key", "planted"),
    ]
    assert sql_database.sealed.reseal() == dict.fromkeys(sql_database.sealed.by_master_key(), 0)
    with pytest.raises(SealingError, match="not a sealed value"):
        sql_database.signing_keys.private_pem("planted")
    report = sql_database.sealed.by_master_key()
    assert report["signing keys"] == {"clear": 1}


def test_replay_answers_are_sealed_to_their_request(sql_database: SqlDatabase) -> None:
    sql_database.migrate()
    token = b'{"token":"eyJhbGciOiJSUzI1NiJ9.live.token"}'
    record = ReplayRecord("BRN-1", "req-1", "f" * 64, 200, token, T0)
    assert sql_database.replays.begin(record) is None
    upload = ReplayRecord("BRN-1", "upload:abc", "f" * 64, None, None, T0)
    assert sql_database.replays.begin(upload) is None
    sql_database.replays.finish("BRN-1", "upload:abc", 200, b'{"id":"DCM-0001-1"}')

    with sql_database.engine.connect() as connection:
        stored = connection.execute(select(replays.c.request_id, replays.c.body)).all()
    for _request_id, body in stored:
        assert bytes(body).startswith(b"sealed:v1:")
        assert b"token" not in bytes(body)
        assert b"DCM-" not in bytes(body)
    again = sql_database.replays.begin(record)
    assert again is not None
    assert again.body == token
    assert sql_database.sealed.by_master_key()["replay answers"] == {SEALER.current.kid: 2}

    # Moved to another request (or another client), the sealed answer does not open.
    with sql_database.engine.begin() as connection:
        connection.execute(
            update(replays).where(replays.c.request_id == "req-1").values(request_id="req-2")
        )
    with pytest.raises(SealingError, match="integrity check"):
        sql_database.replays.begin(replace(record, request_id="req-2"))


def test_data_keys_bound_to_the_id_alone_are_rebound_to_the_whole_row(
    sql_database: SqlDatabase,
) -> None:
    sql_database.migrate("0007")
    sql_database.migrate()
    sql_database.clients.add(make_client())
    stored = make_file()
    # A row as 0007 wrote it: the key sealed to the file id only, no binding noted.
    legacy = SEALER.seal(b"k" * 32, legacy_data_key_context(stored.id))
    sql_database.files.add(stored)
    with sql_database.engine.begin() as connection:
        connection.execute(update(files).values(data_key=legacy, data_key_binding=None))

    assert sql_database.sealed.rebind_data_keys() == 1
    assert sql_database.sealed.rebind_data_keys() == 0
    rebound = sql_database.files.get(stored.id)
    assert rebound is not None
    keys = SealedDataKeys(SEALER)
    assert keys.unwrap(rebound.data_key or "", rebound.binding) == b"k" * 32

    # Given to another partner in the database, the file's key no longer opens.
    sql_database.clients.add(make_client("BRN-OTHER"))
    with sql_database.engine.begin() as connection:
        connection.execute(update(files).values(client_id="BRN-OTHER"))
    moved = sql_database.files.get(stored.id)
    assert moved is not None
    with pytest.raises(BerkasError) as refused:
        keys.unwrap(moved.data_key or "", moved.binding)
    assert refused.value.code == "file_unreadable"
    assert SEALER.current.kid not in str(refused.value)


def test_after_a_delete_no_sqlite_file_holds_the_sealed_data_key(tmp_path: Path) -> None:
    database = SqlDatabase.from_url(f"sqlite:///{tmp_path / 'berkas.db'}", sealer=SEALER)
    try:
        database.migrate()
        database.clients.add(make_client())
        stored = make_file()
        sealed = SealedDataKeys(SEALER).wrap(b"d" * 32, stored.binding)
        database.files.add(replace(stored, data_key=sealed))
        on_disk = b"".join(path.read_bytes() for path in tmp_path.glob("berkas.db*"))
        assert sealed.encode() in on_disk  # the WAL holds it: the test can see it

        deleted = FileEvent(stored.id, stored.client_id, EventKind.DELETED, T0 + timedelta(1))
        assert database.files.remove(stored.id, 1, deleted) is not None

        for path in tmp_path.glob("berkas.db*"):
            assert sealed.encode() not in path.read_bytes(), path.name
            assert sealed.encode()[-24:] not in path.read_bytes(), path.name
    finally:
        database.close()


def test_rekey_leaves_nothing_the_retired_master_key_opens(sql_database: SqlDatabase) -> None:
    sql_database.migrate()
    sql_database.clients.add(make_client())
    sql_database.clients.rotate_secret(make_client().client_id, "SK-new", T0, T0 + timedelta(1))
    stored = make_file()
    wrapped = SealedDataKeys(SEALER).wrap(b"x" * 32, stored.binding)
    sql_database.files.add(replace(stored, data_key=wrapped))
    sql_database.replays.begin(ReplayRecord("BRN-1", "req-1", "f" * 64, 200, b"{}", T0))

    newer = Sealer(MasterKey(bytes(range(7, 39))), [SEALER.current], source="test")
    url = sql_database.engine.url.render_as_string(hide_password=False)
    rekeyed = SqlDatabase.from_url(url, sealer=newer)
    try:
        done = rekeyed.sealed.reseal()
        assert all(done[kind] >= 1 for kind in ("client secret keys", "replay answers"))
        report = rekeyed.sealed.by_master_key()
        for kind, counts in report.items():
            assert SEALER.current.kid not in counts, kind
    finally:
        rekeyed.close()
