"""The file list's query on every store (docs/design.md 3.5): (created_at, id) order,
cursors that neither skip nor repeat a file among equal timestamps, filters, owners."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from berkas.adapters.db.database import SqlDatabase
from berkas.core.listing import FileFilter, Position
from berkas.core.models import EventKind, StoredFile
from berkas.core.ports import Database
from tests.adapters.db.test_contract import T0, make_client, make_file
from tests.adapters.db.test_lifecycle_contract import event as make_event

MINE = "BRN-0001-10791114622547"
THEIRS = "BRN-0002-10791114622547"


def stored(database: Database, n: int, *, client: str = MINE, **changes: Any) -> StoredFile:
    # Three files share each timestamp: only the id tells them apart.
    file_id = f"DCM-{n % 7:04d}-{1740817815000 + n:013d}"
    made = make_file(
        file_id,
        client_id=client,
        key=f"k/{client}/{file_id}.jpg",
        created_at=T0 + timedelta(seconds=n // 3),
        **changes,
    )
    database.files.add(made)
    return made


@pytest.fixture
def files(database: Database) -> list[StoredFile]:
    database.clients.add(make_client(MINE))
    database.clients.add(make_client(THEIRS))
    made = []
    for n in range(30):
        kind: dict[str, Any] = {"category": "LOGO", "code": None} if n % 3 == 0 else {}
        made.append(stored(database, n, **kind))
        stored(database, 100 + n, client=THEIRS)
    return made


def newest_first(files: list[StoredFile]) -> list[str]:
    return [f.id for f in sorted(files, key=lambda f: (f.created_at, f.id), reverse=True)]


def test_pages_forwards_hold_each_file_once_in_order(
    database: Database, files: list[StoredFile]
) -> None:
    seen: list[str] = []
    after: Position | None = None
    while page := database.files.listed(MINE, FileFilter(), limit=7, after=after):
        seen += [f.id for f in page]
        after = Position(page[-1].created_at, page[-1].id)

    assert seen == newest_first(files)


def test_pages_backwards_from_the_oldest_hold_each_file_once(
    database: Database, files: list[StoredFile]
) -> None:
    oldest = newest_first(files)[-1]
    oldest_file = next(f for f in files if f.id == oldest)
    seen: list[str] = [oldest]
    before = Position(oldest_file.created_at, oldest)
    while page := database.files.listed(MINE, FileFilter(), limit=4, before=before):
        seen += [f.id for f in page]  # nearest first: ascending
        before = Position(page[-1].created_at, page[-1].id)

    assert seen == newest_first(files)[::-1]


def test_filters_and_owners(database: Database, files: list[StoredFile]) -> None:
    def listed(client: str | None, **match: Any) -> list[str]:
        return [f.id for f in database.files.listed(client, FileFilter(**match), limit=100)]

    logos = [f for f in files if f.category == "LOGO"]
    assert listed(MINE, category="LOGO") == newest_first(logos)
    assert listed(MINE, code="KTP") == newest_first([f for f in files if f.code == "KTP"])
    middle = [
        f for f in files if T0 + timedelta(seconds=3) <= f.created_at < T0 + timedelta(seconds=5)
    ]
    window = {"created_gte": T0 + timedelta(seconds=3), "created_lt": T0 + timedelta(seconds=5)}
    assert listed(MINE, **window) == newest_first(middle)
    assert len(middle) == 6
    assert listed(THEIRS, category="LOGO") == []
    assert len(listed(THEIRS)) == 30
    assert len(listed(None)) == 60
    assert listed("BRN-0009-0000000000000") == []
    assert listed("BRN\x00") == []


def test_deleted_rows_are_not_listed(database: Database, files: list[StoredFile]) -> None:
    gone = files[5]
    database.files.remove(gone.id, 1, make_event(EventKind.DELETED, gone.id))

    listed = [f.id for f in database.files.listed(MINE, FileFilter(), limit=100)]
    assert gone.id not in listed
    assert len(listed) == 29


@pytest.mark.parametrize(
    ("client", "index"), [(MINE, "ix_files_listing"), (None, "ix_files_newest")]
)
def test_a_page_is_one_range_of_the_listing_index(
    sqlite_database: SqlDatabase, client: str | None, index: str
) -> None:
    # A partner's page, and the operator's over every client's files.
    sqlite_database.migrate()
    sqlite_database.clients.add(make_client(MINE))
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM files" in statement:
            statements.append((statement, params))

    event.listen(sqlite_database.engine, "before_cursor_execute", capture)
    try:
        sqlite_database.files.listed(
            client, FileFilter(), limit=11, after=Position(T0, "DCM-0001-1740817815123")
        )
    finally:
        event.remove(sqlite_database.engine, "before_cursor_execute", capture)
    ((statement, params),) = statements
    with sqlite_database.engine.connect() as connection:
        plan = " ".join(
            str(row[-1])
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
        )
    assert index in plan
    assert "TEMP B-TREE" not in plan  # the index gives the order: no sort


def test_the_migrated_schema_has_the_listing_index(sql_database: SqlDatabase) -> None:
    sql_database.migrate()
    with sql_database.engine.connect() as connection:
        if sql_database.engine.dialect.name == "sqlite":
            names = {row[1] for row in connection.execute(text("PRAGMA index_list('files')"))}
        else:
            names = set(
                connection.execute(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'files'")
                ).scalars()
            )
    assert {"ix_files_listing", "ix_files_newest"} <= names
    assert "ix_files_client_id_created_at" not in names


def test_a_cursor_position_is_the_callers_row_or_its_upload(database: Database) -> None:
    database.clients.add(make_client(MINE))
    database.clients.add(make_client(THEIRS))
    mine = make_file("DCM-0001-1740817815001", client_id=MINE, key="k/a.jpg")
    theirs = make_file("DCM-0001-1740817815002", client_id=THEIRS, key="k/b.jpg")
    for made in (mine, theirs):
        uploaded = make_event(EventKind.UPLOADED, made.id, client_id=made.client_id)
        database.files.add(made, uploaded)

    assert database.files.position_of(MINE, mine.id) == Position(mine.created_at, mine.id)
    assert database.files.position_of(None, theirs.id) == Position(theirs.created_at, theirs.id)
    assert database.files.position_of(MINE, theirs.id) is None
    assert database.files.position_of(MINE, "DCM-0001-1740817815999") is None
    assert database.files.position_of(MINE, "DCM-0001-17408178\x0015001") is None

    # Deleted, it keeps its place through its upload's event; still not another's.
    gone = make_event(EventKind.DELETED, mine.id, client_id=MINE, at=T0 + timedelta(days=1))
    database.files.remove(mine.id, 1, gone)
    assert database.files.position_of(MINE, mine.id) == Position(T0, mine.id)
    assert database.files.position_of(THEIRS, mine.id) is None


def test_another_partners_cursor_reads_what_an_unknown_one_does(
    sqlite_database: SqlDatabase,
) -> None:
    # The same statements and rows for an id of another partner's (with a long audit
    # trail) as for an id nobody has: a cursor's timing tells nothing of other files.
    sqlite_database.migrate()
    sqlite_database.clients.add(make_client(MINE))
    sqlite_database.clients.add(make_client(THEIRS))
    theirs = make_file("DCM-0001-1740817815002", client_id=THEIRS, key="k/b.jpg")
    sqlite_database.files.add(theirs, make_event(EventKind.UPLOADED, theirs.id, client_id=THEIRS))
    for _ in range(200):
        sqlite_database.events.append(make_event(EventKind.DESCRIBED, theirs.id, client_id=THEIRS))
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    def reads(cursor_id: str) -> list[str]:
        seen.clear()
        event.listen(sqlite_database.engine, "before_cursor_execute", capture)
        try:
            assert sqlite_database.files.position_of(MINE, cursor_id) is None
        finally:
            event.remove(sqlite_database.engine, "before_cursor_execute", capture)
        return list(seen)

    assert reads(theirs.id) == reads("DCM-0001-1740817815999")
    row, trail = reads(theirs.id)
    assert "FROM files" in row
    assert "FROM file_events" in trail
    assert "LIMIT" in trail  # one event at most, however long the file's trail
