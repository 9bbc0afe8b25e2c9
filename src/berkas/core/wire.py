"""Wire conventions shared by the server, the SDK and the CLI: the base path, how times
and durations are written, and how caller text is quoted inside messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

# DOKU's Partner API base path (docs/design.md 2).
API_PREFIX = "/adv-core-api/partner/v1.0"

# A message quotes at most this much of what a caller sent, so an error never echoes a page.
_QUOTE_LIMIT = 40


def iso8601(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601 with a ``Z`` (``2026-11-27T08:45:42.123456Z``)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place on the wire; pass an aware UTC time")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


_SPOKEN_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def spoken(duration: timedelta) -> str:
    """``duration`` as a person says it: ``40 days``, ``1 day 6 hours``, ``90 seconds``
    is ``1 minute 30 seconds``; ``0 seconds``. Fractions of a second are dropped; a
    negative duration is ``-`` and the rest."""
    total = int(duration.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    parts = []
    for name, seconds in _SPOKEN_UNITS:
        count, total = divmod(total, seconds)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return sign + (" ".join(parts) or "0 seconds")


def quoted(value: object, limit: int = _QUOTE_LIMIT) -> str:
    """``value`` as JSON for a message (``"KTP"``, ``12``, ``null``), cut short with ``…``."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"
