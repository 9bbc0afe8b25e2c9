"""What the admin verbs print for people: aligned tables, and durations like ``24h``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from berkas.core.wire import iso8601

NONE = "-"
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the header line first."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (headers, *rows)
    ]
    return "\n".join(lines)


def moment(value: datetime | None) -> str:
    """A time as the table shows it: UTC to the second (``2026-12-02T06:10:13Z``), or -."""
    return NONE if value is None else iso8601(value.replace(microsecond=0))


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``24h``, ``7d`` or ``0``; ``ValueError`` naming what is accepted."""
    cleaned = text.strip().lower()
    if cleaned == "0":
        return timedelta(0)
    found = _DURATION.fullmatch(cleaned)
    if found is None:
        raise ValueError(
            f"{text!r} is not a duration; give a number and a unit: 90s, 30m, 24h or 7d (or 0)"
        )
    try:
        return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any grace berkas allows") from None
