"""The composition root: what a start does to the data directory, and what it refuses."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from berkas.adapters.db.database import SqlDatabase
from berkas.config import load_settings
from berkas.core.errors import NotFound
from berkas.core.models import ReplayRecord
from berkas.wiring import (
    DataDirInUse,
    build,
    database_shown,
    ensure_demo_client,
    lock_data_dir,
    open_existing,
    prepare,
    prepare_supervisor,
    prepare_worker,
)
from berkas.wiring.datadir import worker_spool_dir
from berkas.wiring.startup import DEMO_CLIENT_NAME, DemoClient
from tests.support.legacy import new_rsa_key, write_key_directory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_only_the_serving_process_sweeps_partial_uploads(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    prepare(settings, serving=False).close()
    in_flight = settings.spool_dir / "upload-inflight.part"
    in_flight.write_bytes(b"half an upload")

    # An admin command (berkas clients create) beside a live server leaves its uploads be.
    prepare(settings, serving=False).close()
    assert in_flight.exists()

    prepare(settings, serving=True).close()  # a (re)starting server: leftovers are a crash's
    assert not in_flight.exists()


def test_only_the_serving_process_removes_blobs_whose_upload_never_committed(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    key = "berkas/sandbox/TEMP/BRN-0001-00000000000001/LOGO/1700000000000-0001.png"
    services = prepare(settings, serving=False)
    try:
        # What a crash between "blob written" and "row committed" leaves behind.
        services.database.files.reserve_key(key, 1, datetime.now(UTC))
        spooled = tmp_path / "spooled.part"
        spooled.write_bytes(b"half-committed upload")
        services.blobs.put_file(key, spooled, "image/png")
    finally:
        services.close()

    # An admin command cannot tell a crash's leftover from a live server's upload in flight.
    services = prepare(settings, serving=False)
    try:
        assert b"".join(services.blobs.open(key)) == b"half-committed upload"
        assert services.database.files.reserved_keys(1) == [key]
    finally:
        services.close()

    services = prepare(settings, serving=True)
    try:
        with pytest.raises(NotFound):
            services.blobs.open(key)
        assert services.database.files.reserved_keys(1) == []
    finally:
        services.close()


def test_request_id_records_past_their_retention_are_forgotten_at_start(tmp_path: Path) -> None:
    # Kept twice the timestamp window plus a minute (11 minutes at the default 300 s).
    settings = load_settings(data_dir=tmp_path / "data")
    now = datetime.now(UTC)

    def record(client_id: str, request_id: str, age: timedelta) -> ReplayRecord:
        return ReplayRecord(
            client_id=client_id,
            request_id=request_id,
            fingerprint="f" * 64,
            status=200,
            body=b'{"token": "..."}',
            created_at=now - age,
        )

    services = prepare(settings, serving=False)
    try:
        client_id = services.clients.create().client_id
        replays = services.database.replays
        assert replays.begin(record(client_id, "old", timedelta(minutes=12))) is None
        assert replays.begin(record(client_id, "recent", timedelta(minutes=10))) is None
    finally:
        services.close()

    services = prepare(settings, serving=True)
    try:
        replays = services.database.replays
        # begin() answers None only when the Request-Id is free again.
        assert replays.begin(record(client_id, "old", timedelta(0))) is None
        kept = replays.begin(record(client_id, "recent", timedelta(0)))
        assert kept is not None
        assert kept.body == b'{"token": "..."}'
    finally:
        services.close()


def test_the_data_dir_and_database_are_private_even_if_made_by_hand(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    prepare(load_settings(data_dir=data), serving=False).close()
    assert _mode(data) == 0o700
    assert _mode(data / "berkas.db") & 0o077 == 0
    assert _mode(data / "master-key") == 0o600


def test_a_relative_file_storage_url_is_refused(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d", storage_url="file://relative/path")
    with pytest.raises(ValueError, match="absolute path"):
        prepare(settings, serving=False)


@pytest.mark.parametrize(("host", "created"), [("127.0.0.1", True), ("192.0.2.10", False)])
def test_the_demo_client_is_made_only_for_a_loopback_server(
    tmp_path: Path, host: str, created: bool
) -> None:
    settings = load_settings(data_dir=tmp_path / "d", host=host)
    services = prepare(settings, serving=False)
    try:
        assert (ensure_demo_client(services, settings) is not None) is created
        assert ensure_demo_client(services, settings) is None  # never a second time
    finally:
        services.close()


def test_an_explicit_demo_setting_wins(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d", host="192.0.2.10", demo_client=True)
    services = prepare(settings, serving=False)
    try:
        assert ensure_demo_client(services, settings) is not None
    finally:
        services.close()


def test_a_database_gets_one_demo_client_whatever_the_number_of_data_dirs(
    tmp_path: Path,
) -> None:
    # Two nodes (two data dirs) on one database and master key, as a fleet is.
    shared = {
        "database_url": f"sqlite:///{tmp_path / 'shared.db'}",
        "master_key": base64.b64encode(bytes(range(32))).decode(),
    }
    one = load_settings(data_dir=tmp_path / "one", **shared)
    two = load_settings(data_dir=tmp_path / "two", **shared)
    first = prepare(one, serving=False)
    try:
        made = ensure_demo_client(first, one)
        assert made is not None
        assert made.secret_key is not None
    finally:
        first.close()
    second = prepare(two, serving=False)
    try:
        found = ensure_demo_client(second, two)
        # The same client, and no secret: it was shown once, by the node that made it.
        assert found == DemoClient(made.client_id, None)
        assert [c.client_id for c in second.clients.list()] == [made.client_id]
    finally:
        second.close()


@pytest.mark.parametrize("operator_clients", [False, True])
def test_a_demo_claim_whose_node_died_before_creating_it_names_no_missing_client(
    tmp_path: Path, operator_clients: bool
) -> None:
    # A node claimed the demo client and died before creating it. The next node makes
    # that client (and shows its secret) on a database with no client; beside the
    # operator's own clients it names no demo at all, never one that does not exist.
    settings = load_settings(
        data_dir=tmp_path / "node",
        database_url=f"sqlite:///{tmp_path / 'shared.db'}",
        master_key=base64.b64encode(bytes(range(32))).decode(),
    )
    services = prepare(settings, serving=False)
    try:
        database = services.database
        assert isinstance(database, SqlDatabase)
        if operator_clients:
            services.clients.create(label="the operator's")
        claimed = "BRN-0001-00000000000042"
        database.service_secrets.ensure(DEMO_CLIENT_NAME, claimed.encode(), datetime.now(UTC))

        made = ensure_demo_client(services, settings)

        listed = {c.client_id for c in services.clients.list()}
        if operator_clients:
            assert made is None
            assert claimed not in listed
        else:
            assert made is not None
            assert made.client_id == claimed
            assert made.secret_key is not None
            assert listed == {claimed}
    finally:
        services.close()


def test_build_alone_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "never-prepared"
    with pytest.raises(ValueError, match="no master key"):
        build(load_settings(data_dir=data))
    assert not data.exists()


def test_open_existing_refuses_a_missing_data_dir_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "never-prepared"
    with pytest.raises(ValueError, match=rf"^no berkas data dir at {data};"):
        open_existing(load_settings(data_dir=data))
    assert list(tmp_path.iterdir()) == []


def test_open_existing_neither_migrates_nor_sweeps(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    prepare(settings, serving=False).close()
    in_flight = settings.spool_dir / "upload-inflight.part"
    in_flight.write_bytes(b"half an upload")

    services = open_existing(settings)
    try:
        assert services.clients.list() == []
    finally:
        services.close()
    assert in_flight.exists()


def test_the_database_is_shown_without_its_password(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "d", database_url="postgresql://berkas:hunter2@db:5432/berkas"
    )
    assert database_shown(settings) == "postgresql://berkas:***@db:5432/berkas"
    assert database_shown(load_settings(data_dir=tmp_path / "d")) == (
        f"sqlite:///{tmp_path}/d/berkas.db"
    )


def test_the_serve_lock_makes_a_private_data_dir_and_admits_one_holder(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "new")
    with lock_data_dir(settings):
        assert _mode(settings.data_dir) == 0o700
        assert [p.name for p in settings.data_dir.iterdir()] == ["serve.pid"]
        with pytest.raises(DataDirInUse):
            lock_data_dir(settings)


def test_a_malformed_master_key_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d", master_key="bm90IDMyIGJ5dGVz")
    with pytest.raises(ValueError, match=r"^BERKAS_MASTER_KEY: a master key is 32 random bytes"):
        prepare(settings, serving=False)


def test_a_master_key_and_a_master_key_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="BERKAS_MASTER_KEY or BERKAS_MASTER_KEY_FILE, not both"):
        load_settings(data_dir=tmp_path / "d", master_key="x" * 44, master_key_file=tmp_path / "k")


def test_a_node_with_another_master_key_refuses_to_start(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = base64.b64encode(bytes(32)).decode()
    other = base64.b64encode(bytes([1]) * 32).decode()
    prepare(
        load_settings(data_dir=tmp_path / "a", database_url=database_url, master_key=first),
        serving=False,
    ).close()

    # Node b also has an old key directory to import: nothing of it may reach the
    # database sealed under a key the fleet cannot open.
    write_key_directory(tmp_path / "b" / "keys", [(new_rsa_key(), datetime.now(UTC), None)])
    with pytest.raises(ValueError, match=r"sealed with master key .* which this node does not"):
        prepare(
            load_settings(data_dir=tmp_path / "b", database_url=database_url, master_key=other),
            serving=False,
        )
    assert (tmp_path / "b" / "keys").is_dir()
    fleet = open_existing(
        load_settings(data_dir=tmp_path / "a", database_url=database_url, master_key=first)
    )
    try:
        keys = fleet.keys.jwks()["keys"]
        assert isinstance(keys, list)
        assert len(keys) == 1
    finally:
        fleet.close()
    # With the first key given as an older one, the node starts.
    prepare(
        load_settings(
            data_dir=tmp_path / "b",
            database_url=database_url,
            master_key=other,
            master_key_previous=first,
        ),
        serving=False,
    ).close()


@pytest.mark.parametrize(
    ("host", "public_url", "warned"),
    [
        ("0.0.0.0", None, True),  # noqa: S104 - what an operator may configure
        ("::", None, True),
        ("0.0.0.0", "https://berkas.example.com", False),  # noqa: S104
        ("127.0.0.1", None, False),
    ],
)
def test_links_that_would_point_at_a_wildcard_address_are_warned_about(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    host: str,
    public_url: str | None,
    warned: bool,
) -> None:
    settings = load_settings(data_dir=tmp_path / "d", host=host, public_url=public_url)
    with caplog.at_level("WARNING", logger="berkas.wiring"):
        prepare(settings, serving=True).close()
    warnings = [r.getMessage() for r in caplog.records if "BERKAS_PUBLIC_URL" in r.getMessage()]
    assert bool(warnings) is warned
    if warned:
        assert f"links will point at {settings.base_url}" in warnings[0]


def test_creating_the_master_key_says_where_and_to_back_it_up_apart_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(data_dir=tmp_path / "d")
    with caplog.at_level("WARNING", logger="berkas.wiring"):
        prepare(settings, serving=False).close()
        prepare(settings, serving=False).close()  # the file exists now: nothing said

    said = [r.getMessage() for r in caplog.records if "master key" in r.getMessage()]
    assert len(said) == 1, said
    assert f"created the master key {settings.default_master_key_file}" in said[0]
    assert "apart from the database and the store" in said[0]
    assert str(settings.data_dir / "berkas.db") in said[0]
    assert str(settings.data_dir / "blobs") in said[0]


def test_a_master_key_from_the_environment_creates_no_file_and_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = base64.b64encode(bytes(32)).decode()
    settings = load_settings(data_dir=tmp_path / "d", master_key=key)
    with caplog.at_level("WARNING", logger="berkas.wiring"):
        prepare(settings, serving=False).close()

    assert not settings.default_master_key_file.exists()
    assert not [r for r in caplog.records if "created the master key" in r.getMessage()]


def test_each_worker_spools_in_a_private_room_of_its_own(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", workers=2)
    assert worker_spool_dir(settings, None) == settings.spool_dir
    rooms = [worker_spool_dir(settings, k) for k in range(2)]
    assert rooms == [settings.spool_dir / "worker-0", settings.spool_dir / "worker-1"]
    prepare_supervisor(settings).close()
    # A room made by hand (mkdir -m 755), each with what a dead worker left.
    for room in rooms:
        room.mkdir(mode=0o755)
        room.chmod(0o755)
        (room / "upload-left.part").write_bytes(b"half an upload")

    prepare_worker(settings, worker=1, wanted=2).close()

    assert _mode(rooms[1]) == 0o700
    assert list(rooms[1].iterdir()) == []
    # Worker 0 may be serving: its room is not worker 1's to sweep.
    assert [p.name for p in rooms[0].iterdir()] == ["upload-left.part"]
    assert _mode(rooms[0]) == 0o755


def test_the_supervisor_sweeps_every_workers_room_before_any_worker_runs(
    tmp_path: Path,
) -> None:
    settings = load_settings(data_dir=tmp_path / "data", workers=2)
    prepare_supervisor(settings).close()
    for k in range(2):
        prepare_worker(settings, worker=k, wanted=k + 1).close()
        (worker_spool_dir(settings, k) / "upload-left.part").write_bytes(b"cut by a crash")

    prepare_supervisor(settings).close()

    assert not list(settings.spool_dir.rglob("upload-*.part"))
