"""The file list (GET /files, docs/design.md 3.5): one page at a time, or every file with
auto-paging iterators, blocking and async, as Stripe's SDKs page its lists.

``BerkasClient`` and ``AsyncBerkasClient`` take their list methods from the mixins here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from berkas.client.models import _field, _optional, stored_fields
from berkas.client.session import PREFIX, Session, response_json
from berkas.core.wire import iso8601

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from berkas.client.flow import Flow

T = TypeVar("T")
PAGE_SIZE = 100  # what the iterators ask for: the server's largest page, fewest calls


@dataclass(frozen=True, slots=True)
class ListedFile:
    """One file of a list: ``FileInfo`` without a link (the list issues none; call
    ``file(id)`` for one)."""

    id: str
    category: str
    code: str | None
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    created_at: datetime
    retained_until: datetime | None = None
    legal_hold: bool = False
    metadata_removed: tuple[str, ...] = ()
    reencoded: bool = False


@dataclass(frozen=True, slots=True)
class FilePage:
    """One page, newest first; ``has_more``: the direction asked for holds more."""

    files: tuple[ListedFile, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class FileQuery:
    """What a list asks for (see ``BerkasClient.list_files``)."""

    category: str | None = None
    code: str | None = None
    created_gte: datetime | str | None = None
    created_lt: datetime | str | None = None
    limit: int | None = None
    starting_after: str | None = None
    ending_before: str | None = None

    def params(self) -> dict[str, str]:
        """The query string's parameters; a datetime goes as RFC 3339 (it must be aware)."""
        params: dict[str, str] = {}
        for name in ("category", "code", "starting_after", "ending_before"):
            value = getattr(self, name)
            if value is not None:
                params[name] = str(value)
        for name in ("created_gte", "created_lt"):
            value = getattr(self, name)
            if value is not None:
                params[name] = iso8601(value) if isinstance(value, datetime) else value
        if self.limit is not None:
            params["limit"] = str(self.limit)
        return params


def page_flow(session: Session, query: FileQuery) -> Flow[FilePage]:
    """GET /files once, with a bearer token; retried as any GET."""
    params = query.params()
    response = yield from session.bearer(
        lambda auth: session.build(
            "GET", f"{PREFIX}/files", headers={"Authorization": auth}, params=params
        ),
        idempotent=True,
        rewindable=True,
    )
    return parse_page(response_json(response))


def parse_page(body: Any) -> FilePage:
    """Read ``{"data": [...], "has_more": bool}``."""
    items = _optional(body, "data", list)
    if items is None or not isinstance(body.get("has_more"), bool):
        items = _field(body, "data", list)  # raises, naming the field
        _field(body, "has_more", bool)
    return FilePage(tuple(parse_listed(item) for item in items), bool(body["has_more"]))


def parse_listed(body: Any) -> ListedFile:
    """Read one item of a list."""
    return ListedFile(**stored_fields(body))


def _next(query: FileQuery, page: FilePage) -> FileQuery | None:
    """The query of the page after ``page``, in the direction ``query`` pages, or None."""
    if not page.has_more or not page.files:
        return None
    if query.ending_before is not None:
        return replace(query, ending_before=page.files[0].id)
    return replace(query, starting_after=page.files[-1].id)


def _ordered(query: FileQuery, page: FilePage) -> tuple[ListedFile, ...]:
    # Paging backwards, each page is still newest first: the iterator yields the files
    # nearest the cursor first, so it walks from the cursor outwards.
    return page.files[::-1] if query.ending_before is not None else page.files


class SyncListing:
    """``list_files`` and ``list_files_page`` for ``BerkasClient``."""

    _session: Session

    if TYPE_CHECKING:

        def _run(self, flow: Flow[T]) -> T: ...

    def list_files_page(
        self,
        *,
        category: str | None = None,
        code: str | None = None,
        created_gte: datetime | str | None = None,
        created_lt: datetime | str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> FilePage:
        """One page of your files, newest first (GET /files).

        ``limit`` is 1 to 100 (server default 10); ``starting_after`` (the last id of a
        page) gives the older files after it, ``ending_before`` (the first id of a page)
        the newer ones before it. Filters: ``category``, ``code``, ``created_gte``
        (inclusive) and ``created_lt`` (exclusive), each an aware datetime or RFC 3339
        text. Deleted files are not listed.
        """
        query = FileQuery(
            category, code, created_gte, created_lt, limit, starting_after, ending_before
        )
        return self._run(page_flow(self._session, query))

    def list_files(
        self,
        *,
        category: str | None = None,
        code: str | None = None,
        created_gte: datetime | str | None = None,
        created_lt: datetime | str | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[ListedFile]:
        """Every matching file, newest first, fetching pages of ``page_size`` as the
        iteration needs them. From ``starting_after``: the older files after it; from
        ``ending_before``: the newer ones, nearest it first."""
        query: FileQuery | None = FileQuery(
            category, code, created_gte, created_lt, page_size, starting_after, ending_before
        )
        while query is not None:
            page = self._run(page_flow(self._session, query))
            yield from _ordered(query, page)
            query = _next(query, page)


class AsyncListing:
    """``list_files`` and ``list_files_page`` for ``AsyncBerkasClient``."""

    _session: Session

    if TYPE_CHECKING:

        def _run(self, flow: Flow[T]) -> Awaitable[T]: ...

    async def list_files_page(
        self,
        *,
        category: str | None = None,
        code: str | None = None,
        created_gte: datetime | str | None = None,
        created_lt: datetime | str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> FilePage:
        """See ``BerkasClient.list_files_page``."""
        query = FileQuery(
            category, code, created_gte, created_lt, limit, starting_after, ending_before
        )
        return await self._run(page_flow(self._session, query))

    async def list_files(
        self,
        *,
        category: str | None = None,
        code: str | None = None,
        created_gte: datetime | str | None = None,
        created_lt: datetime | str | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[ListedFile]:
        """See ``BerkasClient.list_files``: ``async for file in client.list_files()``."""
        query: FileQuery | None = FileQuery(
            category, code, created_gte, created_lt, page_size, starting_after, ending_before
        )
        while query is not None:
            page = await self._run(page_flow(self._session, query))
            for listed in _ordered(query, page):
                yield listed
            query = _next(query, page)
