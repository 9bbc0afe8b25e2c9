"""Listing stored files a page at a time (docs/design.md 3.5): a partner's own through
``GET /files``, any partner's for the operator (``berkas files list``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest
from berkas.core.ids import is_file_id
from berkas.core.listing import FileFilter, ListQuery, Position
from berkas.core.models import StoredFile
from berkas.core.ports import FileRepository
from berkas.core.wire import quoted


@dataclass(frozen=True, slots=True)
class FilePage:
    """One page, newest first; ``has_more``: the direction asked for holds more files
    (older ones, or with ``ending_before`` newer ones), as Stripe's lists say it."""

    files: list[StoredFile]
    has_more: bool


class FileListing:
    """Pages of stored files in (created_at, id) order, newest first.

    A cursor is a file id. It names a position, not a row: a file of the caller's
    deleted since the page that showed it still marks its place (its ``uploaded`` event
    keeps its created_at), so listing and deleting page by page goes on. An id that is
    not the caller's (absent, another partner's) is one answer, ``cursor_invalid``,
    whichever it is: the list never tells whether another partner's id exists
    (docs/design.md 3: another partner's id reveals nothing).
    """

    def __init__(self, files: FileRepository) -> None:
        self._files = files

    def page(self, client_id: str | None, query: ListQuery) -> FilePage:
        """One page of ``client_id``'s files (None: every client's) for ``query``."""
        limit = query.limit
        if query.ending_before is not None:
            before = self._position(client_id, "ending_before", query.ending_before)
            rows = self._files.listed(client_id, query.filter, limit=limit + 1, before=before)
            return FilePage(list(reversed(rows[:limit])), len(rows) > limit)
        after = None
        if query.starting_after is not None:
            after = self._position(client_id, "starting_after", query.starting_after)
        rows = self._files.listed(client_id, query.filter, limit=limit + 1, after=after)
        return FilePage(rows[:limit], len(rows) > limit)

    def each(
        self, client_id: str | None, match: FileFilter, *, page: int = 100
    ) -> Iterator[StoredFile]:
        """Every matching file, newest first, read ``page`` rows at a time."""
        after: Position | None = None
        while True:
            rows = self._files.listed(client_id, match, limit=page, after=after)
            yield from rows
            if len(rows) < page:
                return
            after = Position(rows[-1].created_at, rows[-1].id)

    def _position(self, client_id: str | None, name: str, file_id: str) -> Position:
        # A live file of the caller's, or one it deleted (its upload's event keeps the
        # place); another partner's id reads what an unknown one does
        # (FileRepository.position_of), so the answer's timing tells nothing either.
        position = self._files.position_of(client_id, file_id) if is_file_id(file_id) else None
        if position is not None:
            return position
        shown = quoted(file_id) if is_file_id(file_id) else "is not a file id and"
        raise InvalidRequest(
            f"{name} {shown} names no file of yours; give the id of a file from the "
            "previous page (ids look like DCM-0001-1732700000000).",
            code=Code.CURSOR_INVALID,
        )
