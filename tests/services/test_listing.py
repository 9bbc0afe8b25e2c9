"""``FileListing`` on the in-memory stores: pages, cursors, and a cursor naming another
partner's file answered exactly as an unknown one, with the same reads."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from berkas.adapters.db.memory import MemoryDatabase
from berkas.core.errors import InvalidRequest
from berkas.core.listing import ListQuery
from berkas.core.models import EventKind, FileEvent
from berkas.services.listing import FileListing
from tests.adapters.db.test_contract import T0, make_client, make_file

MINE = "BRN-0001-10791114622547"
THEIRS = "BRN-0002-10791114622547"


class Counting:
    """A repository whose every call is counted, by method name."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self._inner, self._calls = inner, calls

    def __getattr__(self, name: str) -> Any:
        self._calls.append(name)
        return getattr(self._inner, name)


@pytest.fixture
def database() -> MemoryDatabase:
    database = MemoryDatabase()
    for client in (MINE, THEIRS):
        database.clients.add(make_client(client))
    for n, client in enumerate([MINE, MINE, MINE, THEIRS]):
        file_id = f"DCM-0001-{1740817815000 + n:013d}"
        stored = make_file(file_id, client_id=client, key=f"k/{file_id}")
        uploaded = FileEvent(file_id=file_id, client_id=client, kind=EventKind.UPLOADED, at=T0)
        database.files.add(stored, uploaded)  # all at T0: the id orders them
    return database


def test_pages_and_a_deleted_cursor_keeps_its_place(database: MemoryDatabase) -> None:
    listing = FileListing(database.files)
    first = listing.page(MINE, ListQuery(limit=2))
    assert [f.id for f in first.files] == ["DCM-0001-1740817815002", "DCM-0001-1740817815001"]
    assert first.has_more
    gone = FileEvent(file_id=first.files[1].id, client_id=MINE, kind=EventKind.DELETED, at=T0)
    database.files.remove(first.files[1].id, 1, gone)

    rest = listing.page(MINE, replace(ListQuery(limit=2), starting_after=first.files[1].id))
    assert ([f.id for f in rest.files], rest.has_more) == (["DCM-0001-1740817815000"], False)
    back = listing.page(MINE, ListQuery(limit=1, ending_before="DCM-0001-1740817815000"))
    assert ([f.id for f in back.files], back.has_more) == (["DCM-0001-1740817815002"], False)


def test_another_partners_cursor_is_refused_as_an_unknown_one_with_the_same_reads(
    database: MemoryDatabase,
) -> None:
    def refused(cursor: str) -> tuple[str, list[str]]:
        calls: list[str] = []
        listing = FileListing(Counting(database.files, calls))
        with pytest.raises(InvalidRequest) as error:
            listing.page(MINE, ListQuery(starting_after=cursor))
        assert error.value.code == "cursor_invalid"
        return error.value.message.replace(cursor, "ID"), calls

    theirs = refused("DCM-0001-1740817815003")
    unknown = refused("DCM-0001-1740817815999")

    assert theirs == unknown
    assert theirs[1] == ["position_of"]
