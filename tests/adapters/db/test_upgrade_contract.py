"""The upgrade part of the metadata contract (issue 20): the backlog ``berkas secrets
status`` counts, retention stamped from upload time, the pages ``berkas files upgrade``
walks and its conditional swap, on every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from berkas.core.models import EventKind, FileEvent, StoredFile, UpgradeBacklog
from berkas.core.ports import Database
from tests.adapters.db.test_contract import T0, make_client, make_file

CLIENT = "BRN-0001-10791114622547"
NODE = 7


def old_file(file_id: str, **changes: object) -> StoredFile:
    """A row as a release before encryption, stripping and retention left it."""
    fields: dict[str, object] = {"data_key": None, "metadata_checked": False, **changes}
    return make_file(file_id, **fields)


def upgraded_event(file_id: str) -> FileEvent:
    return FileEvent(file_id, CLIENT, EventKind.UPGRADED, T0, detail="encrypted")


def with_files(database: Database, *stored: StoredFile) -> None:
    database.clients.add(make_client())
    for one in stored:
        database.files.add(one)


def test_the_backlog_counts_what_predates_the_policy(database: Database) -> None:
    with_files(
        database,
        old_file("DCM-0001-1740817815001"),
        old_file("DCM-0001-1740817815002", category="SELFIE"),
        old_file("DCM-0001-1740817815003", data_key="sealed:v1:k:x"),
        make_file("DCM-0001-1740817815004", retained_until=T0, data_key="sealed:v1:k:y"),
    )

    assert database.files.backlog() == UpgradeBacklog(
        in_clear=2,
        unchecked=3,
        without_retention={"DOCUMENT": 2, "SELFIE": 1},
        in_clear_unchecked=2,
    )


def test_an_empty_store_has_no_backlog(database: Database) -> None:
    assert database.files.backlog() == UpgradeBacklog(0, 0, {})


def test_retention_is_stamped_from_upload_time_once_per_category(database: Database) -> None:
    later = T0 + timedelta(days=3, microseconds=7)
    kept = T0 + timedelta(days=1)
    with_files(
        database,
        old_file("DCM-0001-1740817815001"),
        old_file("DCM-0001-1740817815002", created_at=later),
        old_file("DCM-0001-1740817815003", retained_until=kept),
        old_file("DCM-0001-1740817815004", category="SELFIE"),
    )
    span = timedelta(days=365)

    assert database.files.stamp_retention("DOCUMENT", span, T0, "ops@host") == 2
    assert database.files.stamp_retention("DOCUMENT", span, T0) == 0

    def until(file_id: str) -> object:
        got = database.files.get(file_id)
        assert got is not None
        return got.retained_until

    # Exact to the microsecond on every backend: it compares as an upload's would.
    assert until("DCM-0001-1740817815001") == T0 + span
    assert until("DCM-0001-1740817815002") == later + span
    assert until("DCM-0001-1740817815003") == kept
    assert until("DCM-0001-1740817815004") is None
    # Each stamped file's trail says so, once.
    trail = database.events.for_file("DCM-0001-1740817815002")
    stamped = [(e.kind, e.detail, e.at, e.actor) for e in trail]
    assert stamped == [
        (EventKind.UPGRADED, "retention stamped: 365 days from upload", T0, "ops@host")
    ]
    assert database.events.for_file("DCM-0001-1740817815003") == []
    # Housekeeping finds them by it, as it finds any upload's.
    due = database.files.expired(later + span, 10)
    assert [f.id for f in due] == [
        "DCM-0001-1740817815003",
        "DCM-0001-1740817815001",
        "DCM-0001-1740817815002",
    ]


def test_a_retention_span_must_be_whole_seconds(database: Database) -> None:
    with pytest.raises(ValueError, match="whole"):
        database.files.stamp_retention("DOCUMENT", timedelta(seconds=1.5), T0)


def test_outdated_pages_in_id_order_by_what_is_asked(database: Database) -> None:
    with_files(
        database,
        old_file("DCM-0001-1740817815003"),
        old_file("DCM-0001-1740817815001", data_key="sealed:v1:k:x"),
        old_file("DCM-0001-1740817815002", metadata_checked=True),
        make_file("DCM-0001-1740817815004", data_key="sealed:v1:k:y"),
    )
    files = database.files

    def ids(**kwargs: object) -> list[str]:
        args: dict[str, object] = {"after": "", "limit": 10, "in_clear": True, "unchecked": True}
        args.update(kwargs)
        return [f.id for f in files.outdated(**args)]  # type: ignore[arg-type]

    assert ids() == ["DCM-0001-1740817815001", "DCM-0001-1740817815002", "DCM-0001-1740817815003"]
    assert ids(unchecked=False) == ["DCM-0001-1740817815002", "DCM-0001-1740817815003"]
    assert ids(in_clear=False) == ["DCM-0001-1740817815001", "DCM-0001-1740817815003"]
    assert ids(in_clear=False, unchecked=False) == []
    assert ids(limit=1) == ["DCM-0001-1740817815001"]
    assert ids(after="DCM-0001-1740817815001", limit=1) == ["DCM-0001-1740817815002"]
    assert ids(after="DCM-0001-1740817815003") == []


def moved(stored: StoredFile) -> StoredFile:
    return replace(
        stored,
        key=stored.key.replace(".jpg", "-u1750000000000-0007.jpg"),
        data_key="sealed:v1:k:new",
        size=17_000,
        sha256="cd" * 32,
        width=1000,
        height=700,
        metadata_removed=("EXIF", "GPS"),
        metadata_checked=True,
    )


def test_upgrade_swaps_the_row_to_the_new_object_and_the_intents_with_it(
    database: Database,
) -> None:
    stored = old_file("DCM-0001-1740817815001")
    with_files(database, stored)
    new = moved(stored)
    database.files.reserve_key(new.key, NODE, T0)

    assert database.files.upgrade(stored, new, NODE, upgraded_event(stored.id))

    got = database.files.get(stored.id)
    assert got == replace(new, retained_until=None)
    assert database.files.get_by_key(new.key) == got
    assert database.files.get_by_key(stored.key) is None
    # The new object is the row's now; the old one is to be removed, and a crash before
    # that leaves the intent that recovery acts on.
    assert database.files.reserved_keys(NODE) == [stored.key]
    events = database.events.for_file(stored.id)
    assert [(e.kind, e.detail) for e in events] == [(EventKind.UPGRADED, "encrypted")]
    # Counted no more.
    assert database.files.backlog() == UpgradeBacklog(0, 0, {"DOCUMENT": 1}, 0)


def test_upgrade_in_place_changes_the_row_and_no_intent(database: Database) -> None:
    stored = old_file("DCM-0001-1740817815001", data_key="sealed:v1:k:x")
    with_files(database, stored)
    checked = replace(stored, metadata_checked=True)

    assert database.files.upgrade(stored, checked, NODE, upgraded_event(stored.id))

    assert database.files.get(stored.id) == checked
    assert database.files.reserved_keys(NODE) == []


@pytest.mark.parametrize("race", ["deleted", "revoked", "upgraded", "unreserved"])
def test_upgrade_loses_to_whatever_changed_the_row_first(database: Database, race: str) -> None:
    stored = old_file("DCM-0001-1740817815001")
    with_files(database, stored)
    new = moved(stored)
    database.files.reserve_key(new.key, NODE, T0)
    if race == "deleted":
        database.files.remove(stored.id, 1, upgraded_event(stored.id))
    elif race == "revoked":
        database.files.revoke_links(
            stored.id, upgraded_event(stored.id), generation=0, data_key=None
        )
    elif race == "upgraded":
        other = replace(new, key=new.key.replace("-0007", "-0008"))
        database.files.reserve_key(other.key, 8, T0)
        assert database.files.upgrade(stored, other, 8, upgraded_event(stored.id))
    else:  # its reservation was taken away (a recovery removed the new object)
        database.files.release_key(new.key)
    before = database.files.get(stored.id)
    events = len(database.events.for_file(stored.id))

    assert not database.files.upgrade(stored, new, NODE, upgraded_event(stored.id))

    assert database.files.get(stored.id) == before
    assert len(database.events.for_file(stored.id)) == events
    assert database.files.get_by_key(new.key) is None
    # Nothing of the attempt is left but its own reservation, for its caller to drop.
    assert database.files.reserved_keys(NODE) == ([] if race == "unreserved" else [new.key])
