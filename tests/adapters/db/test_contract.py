"""One contract, every metadata store: in-memory, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from berkas.core.errors import Conflict, InvalidRequest
from berkas.core.models import Client, NodeLease, ReplayRecord, StoredFile
from berkas.core.ports import Database

T0 = datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC)
JAKARTA = timezone(timedelta(hours=7))


def make_client(client_id: str = "BRN-0001-10791114622547", **changes: object) -> Client:
    client = Client(client_id=client_id, secret_key="SK-test-0001", enabled=True, created_at=T0)
    return replace(client, **changes)  # type: ignore[arg-type]


def make_file(file_id: str = "DCM-0001-1740817815123", **changes: object) -> StoredFile:
    stored = StoredFile(
        id=file_id,
        client_id="BRN-0001-10791114622547",
        category="DOCUMENT",
        code="KTP",
        key=f"berkas/sandbox/TEMP/BRN-0001-10791114622547/DOCUMENT/{file_id}.jpg",
        content_type="image/jpeg",
        size=18_234,
        sha256="ab" * 32,
        width=1024,
        height=768,
        created_at=T0,
    )
    return replace(stored, **changes)  # type: ignore[arg-type]


def make_replay(request_id: str = "req-1", **changes: object) -> ReplayRecord:
    record = ReplayRecord(
        client_id="BRN-0001-10791114622547",
        request_id=request_id,
        fingerprint="f" * 64,
        status=None,
        body=None,
        created_at=T0,
    )
    return replace(record, **changes)  # type: ignore[arg-type]


# clients


def test_client_round_trips(database: Database) -> None:
    database.clients.add(make_client())

    assert database.clients.get("BRN-0001-10791114622547") == make_client()
    assert database.clients.get("BRN-0001-00000000000000") is None


def test_duplicate_client_is_a_conflict(database: Database) -> None:
    database.clients.add(make_client())

    with pytest.raises(Conflict) as caught:
        database.clients.add(make_client(secret_key="SK-other"))

    assert caught.value.code == "client_exists"
    assert "BRN-0001-10791114622547" in caught.value.message
    assert database.clients.get("BRN-0001-10791114622547") == make_client()


def test_clients_are_listed_oldest_first(database: Database) -> None:
    database.clients.add(make_client("BRN-B", created_at=T0 + timedelta(seconds=2)))
    database.clients.add(make_client("BRN-A", created_at=T0 + timedelta(seconds=1)))
    database.clients.add(make_client("BRN-C", created_at=T0))

    assert [client.client_id for client in database.clients.list()] == ["BRN-C", "BRN-A", "BRN-B"]


def test_empty_store_lists_no_clients(database: Database) -> None:
    assert database.clients.list() == []


def test_client_can_be_disabled_and_enabled(database: Database) -> None:
    database.clients.add(make_client())

    assert database.clients.set_enabled("BRN-0001-10791114622547", False) is True
    disabled = database.clients.get("BRN-0001-10791114622547")
    assert disabled is not None
    assert disabled.enabled is False

    assert database.clients.set_enabled("BRN-0001-10791114622547", True) is True
    enabled = database.clients.get("BRN-0001-10791114622547")
    assert enabled is not None
    assert enabled.enabled is True


def test_enabling_an_unknown_client_reports_false(database: Database) -> None:
    assert database.clients.set_enabled("BRN-missing", True) is False
    assert database.clients.get("BRN-missing") is None


def test_a_client_in_a_grace_round_trips_with_times_in_utc(database: Database) -> None:
    rotated = make_client(
        label="Toko Maju",
        secret_rotated_at=(T0 + timedelta(hours=1)).astimezone(JAKARTA),
        previous_secret_key="SK-old",
        previous_expires_at=(T0 + timedelta(hours=25)).astimezone(JAKARTA),
    )
    database.clients.add(rotated)

    stored = database.clients.get("BRN-0001-10791114622547")
    assert stored == rotated
    assert stored is not None
    assert stored.previous_expires_at is not None
    assert stored.previous_expires_at.utcoffset() == timedelta(0)


def test_a_label_is_stored_changed_and_removed(database: Database) -> None:
    database.clients.add(make_client(label="Toko Maju"))
    assert database.clients.get("BRN-0001-10791114622547") == make_client(label="Toko Maju")

    assert database.clients.set_label("BRN-0001-10791114622547", "Toko Maju Jaya") is True
    listed = database.clients.list()
    assert [client.label for client in listed] == ["Toko Maju Jaya"]
    assert database.clients.set_label("BRN-0001-10791114622547", None) is True
    assert database.clients.get("BRN-0001-10791114622547") == make_client()
    assert database.clients.set_label("BRN-missing", "x") is False


def test_a_rotated_secret_keeps_the_replaced_one_until_its_grace_ends(database: Database) -> None:
    database.clients.add(make_client(label="Toko Maju"))
    rotated_at = T0 + timedelta(days=1)
    until = rotated_at + timedelta(hours=24)

    before = database.clients.rotate_secret("BRN-0001-10791114622547", "SK-new", rotated_at, until)

    assert before == make_client(label="Toko Maju")
    assert database.clients.get("BRN-0001-10791114622547") == make_client(
        label="Toko Maju",
        secret_key="SK-new",
        secret_rotated_at=rotated_at,
        previous_secret_key="SK-test-0001",
        previous_expires_at=until,
        token_generation=1,  # tokens minted before the rotation stop working
    )


def test_rotating_again_within_a_grace_keeps_only_the_latest_previous_secret(
    database: Database,
) -> None:
    database.clients.add(make_client())
    first = T0 + timedelta(hours=1)
    database.clients.rotate_secret(
        "BRN-0001-10791114622547", "SK-second", first, first + timedelta(hours=24)
    )
    second = first + timedelta(hours=1)

    before = database.clients.rotate_secret(
        "BRN-0001-10791114622547", "SK-third", second, second + timedelta(hours=2)
    )

    assert before is not None
    assert (before.secret_key, before.previous_secret_key) == ("SK-second", "SK-test-0001")
    after = database.clients.get("BRN-0001-10791114622547")
    assert after is not None
    assert (after.secret_key, after.previous_secret_key) == ("SK-third", "SK-second")
    assert after.previous_expires_at == second + timedelta(hours=2)


def test_a_rotation_without_grace_keeps_no_previous_secret(database: Database) -> None:
    database.clients.add(make_client())
    at = T0 + timedelta(hours=1)
    database.clients.rotate_secret("BRN-0001-10791114622547", "SK-2", at, at + timedelta(hours=1))

    database.clients.rotate_secret("BRN-0001-10791114622547", "SK-3", at, None)

    after = database.clients.get("BRN-0001-10791114622547")
    assert after == make_client(secret_key="SK-3", secret_rotated_at=at, token_generation=2)


def test_a_disable_bumps_the_token_generation_and_an_enable_keeps_it(database: Database) -> None:
    database.clients.add(make_client())

    assert database.clients.set_enabled("BRN-0001-10791114622547", False) is True
    assert database.clients.set_enabled("BRN-0001-10791114622547", True) is True

    after = database.clients.get("BRN-0001-10791114622547")
    assert after == make_client(token_generation=1)


def test_rotating_an_unknown_client_changes_nothing(database: Database) -> None:
    database.clients.add(make_client())

    assert database.clients.rotate_secret("BRN-missing", "SK-2", T0, T0) is None
    assert database.clients.list() == [make_client()]
    with pytest.raises(ValueError, match="naive"):
        database.clients.rotate_secret(
            "BRN-0001-10791114622547", "SK-2", T0.replace(tzinfo=None), None
        )


def test_expired_previous_secrets_are_forgotten_and_live_ones_kept(database: Database) -> None:
    for client_id, grace in (("BRN-A", timedelta(hours=1)), ("BRN-B", timedelta(hours=3))):
        database.clients.add(make_client(client_id))
        database.clients.rotate_secret(client_id, f"SK-{client_id}", T0, T0 + grace)
    database.clients.add(make_client("BRN-C"))

    assert database.clients.forget_expired_secrets(T0 + timedelta(hours=1)) == 1

    gone, kept, never = (database.clients.get(c) for c in ("BRN-A", "BRN-B", "BRN-C"))
    assert gone == make_client(
        "BRN-A", secret_key="SK-BRN-A", secret_rotated_at=T0, token_generation=1
    )
    assert kept is not None
    assert kept.previous_secret_key == "SK-test-0001"
    assert never == make_client("BRN-C")
    assert database.clients.forget_expired_secrets(T0 + timedelta(hours=1)) == 0


# files


def test_file_is_found_by_id_and_by_key(database: Database) -> None:
    database.clients.add(make_client())
    stored = make_file()

    database.files.add(stored)

    assert database.files.get(stored.id) == stored
    assert database.files.get_by_key(stored.key) == stored
    assert database.files.get("DCM-0001-0000000000000") is None
    assert database.files.get_by_key("berkas/missing.jpg") is None


def test_lookups_of_text_with_a_nul_find_nothing(database: Database) -> None:
    # GET /file/%00 reaches files.get with caller text; PostgreSQL refused the parameter
    # (a 500) where SQLite and the in-memory store simply found no row.
    database.clients.add(make_client())
    database.files.add(make_file())

    assert database.files.get("DCM-0001-\x00") is None
    assert database.files.get_by_key("berkas/\x00.jpg") is None
    assert database.clients.get("BRN-0001-\x00") is None


def test_file_optional_fields_and_large_sizes_round_trip(database: Database) -> None:
    database.clients.add(make_client())
    # A size past 2**31 needs the BIGINT column.
    stored = make_file(code=None, width=None, height=None, size=5 * 2**30)

    database.files.add(stored)

    assert database.files.get(stored.id) == stored


def test_a_committed_row_clears_the_reservation_of_its_key(database: Database) -> None:
    database.clients.add(make_client())
    kept = make_file("DCM-0001-1740817815123")
    orphan_key = "berkas/sandbox/TEMP/BRN-0001-10791114622547/LOGO/1.png"
    database.files.reserve_key(kept.key, 1, T0)
    database.files.reserve_key(orphan_key, 1, T0 + timedelta(seconds=1))
    database.files.reserve_key(orphan_key, 1, T0 + timedelta(seconds=2))  # idempotent
    database.files.reserve_key("other/node/key.jpg", 2, T0)

    database.files.add(kept)

    assert database.files.reserved_keys(1) == [orphan_key]
    assert database.files.reserved_keys(2) == ["other/node/key.jpg"]
    database.files.release_key(orphan_key)
    database.files.release_key("never/reserved.jpg")
    assert database.files.reserved_keys(1) == []


def test_a_failed_row_keeps_the_reservation(database: Database) -> None:
    database.clients.add(make_client())
    database.files.add(make_file("DCM-0001-1740817815123"))
    clash = make_file("DCM-0001-1740817815123", key="berkas/x/clash.jpg")
    database.files.reserve_key(clash.key, 1, T0)

    with pytest.raises(Conflict):
        database.files.add(clash)

    assert database.files.reserved_keys(1) == [clash.key]


def test_duplicate_file_id_is_a_conflict(database: Database) -> None:
    database.clients.add(make_client())
    database.files.add(make_file())

    with pytest.raises(Conflict) as caught:
        database.files.add(make_file(key="berkas/another-key.jpg"))

    assert caught.value.code == "duplicate_id"
    assert database.files.get_by_key("berkas/another-key.jpg") is None


def test_duplicate_file_key_is_a_conflict(database: Database) -> None:
    database.clients.add(make_client())
    first = make_file()
    database.files.add(first)

    with pytest.raises(Conflict) as caught:
        database.files.add(make_file("DCM-0001-1740817815999", key=first.key))

    assert caught.value.code == "duplicate_id"
    assert database.files.get("DCM-0001-1740817815999") is None
    assert database.files.get_by_key(first.key) == first


def test_file_of_an_unknown_client_is_refused(database: Database) -> None:
    with pytest.raises(InvalidRequest) as caught:
        database.files.add(make_file(client_id="BRN-nobody"))

    assert caught.value.code == "unknown_client"
    assert database.files.get(make_file().id) is None


# datetimes


def test_datetimes_come_back_as_the_same_instant_in_utc(database: Database) -> None:
    jakarta_time = datetime(2025, 3, 1, 15, 30, 15, 654321, tzinfo=JAKARTA)
    database.clients.add(make_client(created_at=jakarta_time))
    database.files.add(make_file(created_at=jakarta_time))
    database.replays.begin(make_replay(created_at=jakarta_time))

    client = database.clients.get("BRN-0001-10791114622547")
    stored = database.files.get(make_file().id)
    replay = database.replays.begin(make_replay())
    assert client is not None
    assert stored is not None
    assert replay is not None
    for value in (client.created_at, stored.created_at, replay.created_at):
        assert value == jakarta_time
        assert value.utcoffset() == timedelta(0)
        assert value.microsecond == 654321


def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        database.clients.add(make_client(created_at=datetime(2025, 3, 1, 8, 30)))
    with pytest.raises(ValueError, match="timezone-aware"):
        database.replays.purge_before(datetime(2025, 3, 1, 8, 30), uploads_before=T0)

    assert database.clients.list() == []


# replay records


def test_first_begin_reserves_the_request_id(database: Database) -> None:
    assert database.replays.begin(make_replay()) is None


def test_second_begin_returns_the_first_reservation(database: Database) -> None:
    database.replays.begin(make_replay(fingerprint="a" * 64))

    existing = database.replays.begin(make_replay(fingerprint="b" * 64))

    assert existing == make_replay(fingerprint="a" * 64)
    assert existing is not None
    assert existing.status is None
    assert existing.body is None


def test_finished_request_replays_its_response(database: Database) -> None:
    database.replays.begin(make_replay())
    body = b'{"id": "DCM-0001-1740817815123", "category": "DOCUMENT"}\x00\xff'

    database.replays.finish("BRN-0001-10791114622547", "req-1", 200, body)
    existing = database.replays.begin(make_replay(fingerprint="b" * 64))

    assert existing is not None
    assert existing.fingerprint == "f" * 64
    assert existing.status == 200
    assert existing.body == body


def test_released_request_id_can_be_reserved_again(database: Database) -> None:
    database.replays.begin(make_replay(fingerprint="a" * 64))

    database.replays.release("BRN-0001-10791114622547", "req-1")

    assert database.replays.begin(make_replay(fingerprint="b" * 64)) is None
    again = database.replays.begin(make_replay())
    assert again is not None
    assert again.fingerprint == "b" * 64


def test_release_and_finish_of_unknown_request_ids_change_nothing(database: Database) -> None:
    database.replays.release("BRN-0001-10791114622547", "never-seen")
    database.replays.finish("BRN-0001-10791114622547", "never-seen", 200, b"{}")

    assert database.replays.begin(make_replay("never-seen")) is None


def test_request_ids_are_scoped_per_client(database: Database) -> None:
    database.replays.begin(make_replay(client_id="BRN-A"))

    assert database.replays.begin(make_replay(client_id="BRN-B")) is None


def test_release_stale_takes_over_only_old_unanswered_reservations(
    database: Database,
) -> None:
    client = "BRN-0001-10791114622547"
    database.replays.begin(make_replay("crashed", created_at=T0 - timedelta(minutes=10)))
    database.replays.begin(make_replay("live", created_at=T0))
    database.replays.begin(make_replay("answered", created_at=T0 - timedelta(minutes=10)))
    database.replays.finish(client, "answered", 200, b"{}")
    cutoff = T0 - timedelta(minutes=5)

    assert database.replays.release_stale(client, "crashed", cutoff) is True
    assert database.replays.release_stale(client, "crashed", cutoff) is False
    assert database.replays.release_stale(client, "live", cutoff) is False
    assert database.replays.release_stale(client, "answered", cutoff) is False

    assert database.replays.begin(make_replay("crashed")) is None
    live = database.replays.begin(make_replay("live"))
    assert live is not None
    assert live.body is None
    answered = database.replays.begin(make_replay("answered"))
    assert answered is not None
    assert answered.body == b"{}"


def test_purge_removes_only_older_records(database: Database) -> None:
    for hours_ago, request_id in ((3, "old-1"), (2, "old-2"), (0, "recent")):
        database.replays.begin(make_replay(request_id, created_at=T0 - timedelta(hours=hours_ago)))

    purged = database.replays.purge_before(T0 - timedelta(hours=1), uploads_before=T0)

    assert purged == 2
    assert database.replays.begin(make_replay("old-1")) is None
    assert database.replays.begin(make_replay("old-2")) is None
    assert database.replays.begin(make_replay("recent")) is not None
    gone = T0 - timedelta(hours=5)
    assert database.replays.purge_before(gone, uploads_before=gone) == 0


def test_upload_keys_are_purged_on_their_own_retention(database: Database) -> None:
    # A signed Request-Id lives only as long as a replay can be accepted; an upload's
    # Idempotency-Key (a file id, no credential) is kept for its own, longer retention.
    two_hours_ago = T0 - timedelta(hours=2)
    database.replays.begin(make_replay("signed", created_at=two_hours_ago))
    database.replays.begin(make_replay("upload:abc", created_at=two_hours_ago))

    purged = database.replays.purge_before(
        T0 - timedelta(hours=1), uploads_before=T0 - timedelta(hours=48)
    )

    assert purged == 1
    assert database.replays.begin(make_replay("signed")) is None  # forgotten: new again
    assert database.replays.begin(make_replay("upload:abc")) is not None  # still known


def test_concurrent_begins_reserve_exactly_once(database: Database) -> None:
    threads = 8
    barrier = threading.Barrier(threads)
    results: dict[int, ReplayRecord | None] = {}
    failures: list[BaseException] = []

    def contend(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = database.replays.begin(make_replay(fingerprint=f"{index:064d}"))
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            failures.append(exc)

    workers = [threading.Thread(target=contend, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert failures == []
    winners = [index for index, result in results.items() if result is None]
    assert len(results) == threads
    assert len(winners) == 1
    losers = [result for result in results.values() if result is not None]
    assert {loser.fingerprint for loser in losers} == {f"{winners[0]:064d}"}


# node leases


def lease(
    node_id: int = 1, holder: str = "node-a", *, until: datetime = T0 + timedelta(seconds=30)
) -> NodeLease:
    return NodeLease(node_id=node_id, holder=holder, label=f"{holder} on host x", expires_at=until)


def test_a_free_node_id_is_leased_and_then_held(database: Database) -> None:
    assert database.leases.acquire(lease(), T0) is None

    assert database.leases.held(T0) == [lease()]
    # Another holder is refused while the lease lives, and told whose it is.
    assert database.leases.acquire(lease(holder="node-b"), T0 + timedelta(seconds=29)) == lease()


def test_the_same_holder_takes_its_lease_back_at_once(database: Database) -> None:
    # A node restarting on its data dir after a crash, before its lease lapsed.
    database.leases.acquire(lease(), T0)
    later = lease(until=T0 + timedelta(seconds=40))
    assert database.leases.acquire(later, T0 + timedelta(seconds=10)) is None
    assert database.leases.held(T0 + timedelta(seconds=35)) == [later]


def test_a_lapsed_lease_is_taken_over(database: Database) -> None:
    database.leases.acquire(lease(), T0)
    theirs = lease(holder="node-b", until=T0 + timedelta(seconds=61))
    assert database.leases.acquire(theirs, T0 + timedelta(seconds=31)) is None
    assert database.leases.held(T0 + timedelta(seconds=31)) == [theirs]
    # The first holder has lost it: renewing says so.
    assert database.leases.renew(lease(until=T0 + timedelta(seconds=70))) is False


def test_renew_extends_and_release_frees(database: Database) -> None:
    database.leases.acquire(lease(), T0)
    assert database.leases.renew(lease(until=T0 + timedelta(seconds=90))) is True
    assert database.leases.held(T0 + timedelta(seconds=60)) == [
        lease(until=T0 + timedelta(seconds=90))
    ]
    database.leases.release(1, "node-b")  # not theirs: untouched
    assert len(database.leases.held(T0)) == 1
    database.leases.release(1, "node-a")
    assert database.leases.held(T0) == []
    assert database.leases.acquire(lease(holder="node-b"), T0) is None


def test_held_lists_only_live_leases_by_number(database: Database) -> None:
    database.leases.acquire(lease(7, "node-a"), T0)
    database.leases.acquire(lease(2, "node-b", until=T0 + timedelta(seconds=5)), T0)
    database.leases.acquire(lease(0, "node-c"), T0)
    assert [x.node_id for x in database.leases.held(T0)] == [0, 2, 7]
    assert [x.node_id for x in database.leases.held(T0 + timedelta(seconds=10))] == [0, 7]


def test_two_nodes_claiming_one_free_number_at_once_get_one_winner(database: Database) -> None:
    outcomes: list[NodeLease | None] = []
    barrier = threading.Barrier(8)

    def claim(holder: str) -> None:
        barrier.wait()
        outcomes.append(database.leases.acquire(lease(3, holder), T0))

    threads = [threading.Thread(target=claim, args=(f"node-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count(None) == 1
    (winner,) = database.leases.held(T0)
    assert all(o == winner for o in outcomes if o is not None)
