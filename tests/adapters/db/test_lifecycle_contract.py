"""The lifecycle part of the metadata contract (issue 11): removal, revocation, hold,
retention, duplicates, the audit trail and chore leases, on every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from berkas.core.models import EventKind, FileEvent
from berkas.core.ports import Database
from tests.adapters.db.test_contract import T0, make_client, make_file

CLIENT = "BRN-0001-10791114622547"


def event(kind: EventKind, file_id: str = "DCM-0001-1740817815123", **changes: object) -> FileEvent:
    made = FileEvent(file_id=file_id, client_id=CLIENT, kind=kind, at=T0)
    return replace(made, **changes)  # type: ignore[arg-type]


def stored_with_client(database: Database, **changes: object) -> None:
    database.clients.add(make_client())
    database.files.add(make_file("DCM-0001-1740817815123", **changes), event(EventKind.UPLOADED))


def test_lifecycle_fields_round_trip(database: Database) -> None:
    until = T0 + timedelta(days=30)
    stored_with_client(
        database, retained_until=until, data_key="sealed:v1:x:y", metadata_removed=("exif", "gps")
    )

    got = database.files.get("DCM-0001-1740817815123")

    assert got is not None
    assert (got.retained_until, got.legal_hold, got.link_generation) == (until, False, 0)
    assert (got.data_key, got.metadata_removed) == ("sealed:v1:x:y", ("exif", "gps"))


def test_add_writes_its_event_in_the_same_call(database: Database) -> None:
    stored_with_client(database)

    events = database.events.for_file("DCM-0001-1740817815123")

    assert [(e.kind, e.client_id) for e in events] == [(EventKind.UPLOADED, CLIENT)]
    assert events[0].id is not None
    assert events[0].at == T0


def test_remove_deletes_the_row_reserves_the_key_and_records(database: Database) -> None:
    stored_with_client(database)

    removed = database.files.remove("DCM-0001-1740817815123", 3, event(EventKind.DELETED))

    assert removed == make_file()
    assert database.files.get("DCM-0001-1740817815123") is None
    assert database.files.get_by_key(make_file().key) is None
    assert database.files.reserved_keys(3) == [make_file().key]
    kinds = [e.kind for e in database.events.for_file("DCM-0001-1740817815123")]
    assert kinds == [EventKind.UPLOADED, EventKind.DELETED]
    assert database.files.remove("DCM-0001-1740817815123", 3, event(EventKind.DELETED)) is None
    assert len(database.events.for_file("DCM-0001-1740817815123")) == 2


def test_revoke_bumps_the_generation(database: Database) -> None:
    stored_with_client(database)
    file_id = "DCM-0001-1740817815123"

    def revoke(generation: int, data_key: str | None = None) -> int | None:
        revoked = event(EventKind.LINKS_REVOKED)
        return database.files.revoke_links(
            file_id, revoked, generation=generation, data_key=data_key
        )

    assert revoke(0) == 1
    assert revoke(1, "sealed:v1:k:rewrapped") == 2
    # A revoke that read generation 1 lost the race to the one above: nothing changes.
    assert revoke(1, "sealed:v1:k:stale") is None
    assert (
        database.files.revoke_links(
            "DCM-0009-1", event(EventKind.LINKS_REVOKED), generation=0, data_key=None
        )
        is None
    )
    got = database.files.get(file_id)
    assert got is not None
    assert got.link_generation == 2
    assert got.data_key == "sealed:v1:k:rewrapped"
    kinds = [e.kind for e in database.events.for_file(file_id)]
    assert kinds.count(EventKind.LINKS_REVOKED) == 2


def test_expired_skips_held_and_unexpired_files(database: Database) -> None:
    database.clients.add(make_client())
    for n, days in enumerate((-2, -1, 5)):
        file_id = f"DCM-0001-{n}"
        database.files.add(
            make_file(file_id, key=f"k/{n}.jpg", retained_until=T0 + timedelta(days=days))
        )
    database.files.add(make_file("DCM-0001-9", key="k/9.jpg"))  # kept until deleted

    assert [f.id for f in database.files.expired(T0, 10)] == ["DCM-0001-0", "DCM-0001-1"]
    assert [f.id for f in database.files.expired(T0, 1)] == ["DCM-0001-0"]
    assert database.files.set_hold("DCM-0001-0", True, event(EventKind.HOLD_SET, "DCM-0001-0"))
    assert [f.id for f in database.files.expired(T0, 10)] == ["DCM-0001-1"]
    assert database.files.set_hold(
        "DCM-0001-0", False, event(EventKind.HOLD_RELEASED, "DCM-0001-0")
    )
    assert [f.id for f in database.files.expired(T0, 10)] == ["DCM-0001-0", "DCM-0001-1"]
    assert database.files.set_hold("DCM-0009-9", True, event(EventKind.HOLD_SET)) is False


def test_duplicate_of_names_the_first_same_bytes_same_category(database: Database) -> None:
    database.clients.add(make_client())
    database.clients.add(make_client("BRN-OTHER"))
    database.files.add(make_file("DCM-0001-2", key="k/2.jpg", created_at=T0 + timedelta(1)))
    database.files.add(make_file("DCM-0001-1", key="k/1.jpg"))
    database.files.add(make_file("DCM-0001-3", key="k/3.jpg", sha256="cd" * 32))

    assert database.files.duplicate_of(CLIENT, "DOCUMENT", "ab" * 32) == "DCM-0001-1"
    assert database.files.duplicate_of(CLIENT, "BRAND", "ab" * 32) is None
    assert database.files.duplicate_of("BRN-OTHER", "DOCUMENT", "ab" * 32) is None


def test_export_pages_by_id_and_filters(database: Database) -> None:
    database.clients.add(make_client())
    for n in range(5):
        database.events.append(
            event(
                EventKind.LINK_OPENED,
                f"DCM-0001-{n}",
                at=T0 + timedelta(minutes=n),
                client_id=CLIENT if n % 2 == 0 else "BRN-OTHER",
                ip="203.0.113.7",
                user_agent="x" * 600,
            )
        )

    first = database.events.export(since=None, client_id=None, after_id=0, limit=2)
    rest = database.events.export(since=None, client_id=None, after_id=first[-1].id or 0, limit=9)
    mine = database.events.export(
        since=T0 + timedelta(minutes=1), client_id=CLIENT, after_id=0, limit=9
    )

    assert [e.file_id for e in first + rest] == [f"DCM-0001-{n}" for n in range(5)]
    assert [e.file_id for e in mine] == ["DCM-0001-2", "DCM-0001-4"]
    assert mine[0].ip == "203.0.113.7"
    assert mine[0].user_agent == "x" * 512


def test_task_lease_has_one_holder_until_it_expires(database: Database) -> None:
    later = T0 + timedelta(seconds=60)

    assert database.tasks.acquire("retention", "node-a", later, T0) is True
    assert database.tasks.acquire("retention", "node-b", later, T0) is False
    assert database.tasks.acquire("retention", "node-a", later + timedelta(1), T0) is True
    assert database.tasks.acquire("retention", "node-b", later, later + timedelta(2)) is True
    database.tasks.release("retention", "node-a")  # not its lease any more
    assert database.tasks.acquire("retention", "node-a", later, T0) is False
    database.tasks.release("retention", "node-b")
    assert database.tasks.acquire("retention", "node-a", later, T0) is True
