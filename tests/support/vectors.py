"""What the hostile-input suites tried, tallied per family and printed by ``make test``.

Each corpus test calls ``tally(family, status, accepted=...)`` for every vector it sends,
and a fixture that owns a real server calls ``server_errors(family, server)`` before
stopping it: the 5xx the *server* counted in ``/metrics``, which would also catch an
error the test client never saw (a response cut off after its status line, say).
``tests/conftest.py`` prints the table at the end of the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx


@dataclass
class Counts:
    tried: int = 0
    accepted: int = 0
    refused: int = 0
    answered_5xx: int = 0
    server_5xx: int = 0


TALLY: dict[str, Counts] = {}

_STATUS_5XX = re.compile(
    r'^berkas_http_requests_total\{[^}]*status="5\d\d"[^}]*\} ([0-9.e+]+)$', re.M
)


def tally(family: str, status: int, *, accepted: bool | None = None) -> None:
    """Count one vector of ``family`` answered with ``status``.

    ``accepted`` defaults to "the answer was a 2xx"; a 5xx is counted as neither
    accepted nor refused (it is a defect, and the test asserting on it fails).
    """
    counts = TALLY.setdefault(family, Counts())
    counts.tried += 1
    if status >= 500:
        counts.answered_5xx += 1
    elif accepted if accepted is not None else 200 <= status < 300:
        counts.accepted += 1
    else:
        counts.refused += 1


def server_errors(family: str, base_url: str) -> int:
    """Add the 5xx a running server has recorded in ``/metrics`` to ``family``; returns it."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    errors = int(sum(float(value) for value in _STATUS_5XX.findall(text)))
    TALLY.setdefault(family, Counts()).server_5xx += errors
    return errors


def report_lines() -> list[str]:
    """The table ``make test`` prints (empty when no corpus test ran)."""
    if not TALLY:
        return []
    header = (
        f"{'family':<28} {'tried':>7} {'accepted':>9} {'refused':>8} {'5xx':>5} {'server 5xx':>11}"
    )
    lines = [header, "-" * len(header)]
    total = Counts()
    for family in sorted(TALLY):
        c = TALLY[family]
        lines.append(
            f"{family:<28} {c.tried:>7} {c.accepted:>9} {c.refused:>8} "
            f"{c.answered_5xx:>5} {c.server_5xx:>11}"
        )
        for name in ("tried", "accepted", "refused", "answered_5xx", "server_5xx"):
            setattr(total, name, getattr(total, name) + getattr(c, name))
    lines.append(
        f"{'all':<28} {total.tried:>7} {total.accepted:>9} {total.refused:>8} "
        f"{total.answered_5xx:>5} {total.server_5xx:>11}"
    )
    return lines
