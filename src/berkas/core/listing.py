"""The file list's query (docs/design.md 3.5): its parameters read and checked, its cursor
and the order pages follow. Pure: the repositories run it, the list service pages it.

Pages follow Stripe's cursor pagination (its API reference, "Pagination"): newest first,
``limit`` items, ``starting_after`` an id to continue after (older files),
``ending_before`` an id to continue before (newer files), ``has_more`` whether that
direction holds more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from berkas.core.catalogue_types import Category, DocumentCode
from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest
from berkas.core.wire import quoted

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
PARAMETERS = (
    "limit",
    "starting_after",
    "ending_before",
    "category",
    "code",
    "created_gte",
    "created_lt",
)
TIMESTAMP_FORM = "an RFC 3339 time such as 2026-12-07T08:45:42Z (as created_at shows it) or a date"


@dataclass(frozen=True, slots=True)
class Position:
    """Where a file stands in the list: the order is ``created_at`` then ``id``, both
    descending, so files created in the same microsecond still have one fixed order and
    a page boundary between them neither skips nor repeats one."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class FileFilter:
    """Which files a list shows; None leaves a filter out. ``created_gte`` is inclusive,
    ``created_lt`` exclusive (so consecutive ranges never share a file)."""

    category: str | None = None
    code: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page's question: the filter, the page size, and at most one cursor id."""

    filter: FileFilter = FileFilter()
    limit: int = DEFAULT_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None


def parse_query(params: Mapping[str, Sequence[str]]) -> ListQuery:
    """The query string of ``GET /files`` (each name to the values given), or an
    ``InvalidRequest`` naming the parameter, what was wrong and what is accepted."""
    unknown = sorted(name for name in params if name not in PARAMETERS)
    if unknown:
        raise InvalidRequest(
            f"query parameter {quoted(unknown[0])} is not one this list takes; "
            f"it takes {', '.join(PARAMETERS)}.",
            code=Code.UNKNOWN_PARAMETER,
        )
    one: dict[str, str] = {}
    for name, values in params.items():
        if len(values) > 1:
            raise InvalidRequest(
                f"query parameter {name} is given {len(values)} times; send it once.",
                code=Code.PARAMETER_REPEATED,
            )
        one[name] = values[0]
    after, before = one.get("starting_after"), one.get("ending_before")
    if after is not None and before is not None:
        raise InvalidRequest(
            "starting_after and ending_before are both given; a page continues in one "
            "direction, so send one of them.",
            code=Code.CURSOR_CONFLICT,
        )
    for name, value in (("starting_after", after), ("ending_before", before)):
        if value is not None and not value.strip():
            raise InvalidRequest(
                f"{name} is empty; give the id of a file from the previous page.",
                code=Code.CURSOR_INVALID,
            )
    created_gte = _moment(one, "created_gte")
    created_lt = _moment(one, "created_lt")
    if created_gte is not None and created_lt is not None and created_gte >= created_lt:
        raise InvalidRequest(
            f"created_gte ({one['created_gte']}) is not before created_lt "
            f"({one['created_lt']}); no file could match.",
            code=Code.CREATED_INVALID,
        )
    return ListQuery(
        filter=FileFilter(
            category=_member(one, "category", Category),
            code=_member(one, "code", DocumentCode),
            created_gte=created_gte,
            created_lt=created_lt,
        ),
        limit=_limit(one.get("limit")),
        starting_after=after,
        ending_before=before,
    )


def check_limit(limit: int) -> int:
    """``limit`` when it is 1 to ``MAX_LIMIT``, else ``InvalidRequest`` (``limit_invalid``)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit {limit} is out of range; give a whole number from 1 to {MAX_LIMIT} "
            f"(default {DEFAULT_LIMIT}).",
            code=Code.LIMIT_INVALID,
        )
    return limit


# RFC 3339's date-time (section 5.6, https://www.rfc-editor.org/rfc/rfc3339#section-5.6)
# or a full-date alone; Python's fromisoformat takes more of ISO 8601 (week dates, basic
# format, offsets with seconds), which the API does not promise.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?)?"
)


def parse_moment(name: str, text: str) -> datetime:
    """A ``created_gte`` / ``created_lt`` bound in UTC: an RFC 3339 time with its offset
    (``Z`` or ``+07:00``; what ``created_at`` shows, fractions included) or a date
    (its midnight UTC). A time without an offset is refused: it could be any zone."""
    value = text.strip()
    form = _RFC3339.fullmatch(value)
    hint = ""
    try:
        if form is None:
            raise ValueError(value)
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        if form["offset"] is None:
            hint = "; add Z or an offset"
            raise ValueError(value)
        # Python 3.11 reads at most 6 fraction digits: RFC 3339 allows more.
        moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value))
        # Out of datetime's range once in UTC (9999-12-31T23:59:59-01:00): no such time.
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidRequest(
            f"{name} {quoted(text)} is not {TIMESTAMP_FORM}{hint}.", code=Code.CREATED_INVALID
        ) from None


def _moment(one: Mapping[str, str], name: str) -> datetime | None:
    text = one.get(name)
    return None if text is None else parse_moment(name, text)


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit():
        raise InvalidRequest(
            f"limit {quoted(text)} is not a whole number; give one from 1 to {MAX_LIMIT} "
            f"(default {DEFAULT_LIMIT}).",
            code=Code.LIMIT_INVALID,
        )
    if len(text) > 4:  # past MAX_LIMIT, however many digits (not worth converting)
        raise InvalidRequest(
            f"limit {quoted(text)} is out of range; give a whole number from 1 to {MAX_LIMIT} "
            f"(default {DEFAULT_LIMIT}).",
            code=Code.LIMIT_INVALID,
        )
    return check_limit(int(text))


def _member(
    one: Mapping[str, str], name: str, kind: type[Category] | type[DocumentCode]
) -> str | None:
    text = one.get(name)
    if text is None:
        return None
    try:
        return kind(text).value
    except ValueError:
        pass
    names = ", ".join(member.value for member in kind)
    try:
        hint = f"; did you mean {kind(text.strip().upper()).value}?"
    except ValueError:
        hint = f"; one of {names}."
    message = f"{name} {quoted(text)} is not accepted{hint}"
    if kind is Category:
        raise InvalidRequest(message, code=Code.CATEGORY_INVALID)
    raise InvalidRequest(message, code=Code.CODE_INVALID)
