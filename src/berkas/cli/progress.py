"""The partner CLI's progress bar: one line on stderr, redrawn in place, only on a terminal.

It is the SDK's ``on_progress`` callback; a pipe or ``--quiet`` gets nothing at all, so
scripts reading stderr see only errors. ``note`` follows the same rule for a line of text.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 30
# Redraw at most this often: a terminal write per 64 KiB chunk would cost more than the
# transfer on a fast link.
INTERVAL = 0.1


def human(n: int) -> str:
    """``1.4 MB``: sizes as the bar shows them (MiB, as berkas reads DOKU's MB)."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


class Progress:
    """``Progress(label)(done, total)`` draws; ``close()`` ends the line.

    ``enabled=None`` means "when ``stream`` is a terminal".
    """

    def __init__(
        self,
        label: str,
        *,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        show: Callable[[int], str] = human,
    ) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._enabled = _isatty(self._stream) if enabled is None else enabled
        self._label = label
        self._clock = clock
        self._show = show  # how an amount reads: bytes by default, or a count
        self._drawn_at: float | None = None
        self._last = ""
        self._state: tuple[int, int | None] | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self._enabled:
            return
        self._state = (done, total)
        now = self._clock()
        finished = total is not None and done >= total
        if self._drawn_at is not None and now - self._drawn_at < INTERVAL and not finished:
            return
        self._drawn_at = now
        self._draw(done, total)

    def close(self) -> None:
        """Draw the last state (if it was skipped) and end the line."""
        if not self._enabled or self._state is None:
            return
        self._draw(*self._state)
        self._stream.write("\n")
        self._stream.flush()

    def _draw(self, done: int, total: int | None) -> None:
        if total:
            share = min(done / total, 1.0)
            filled = int(share * WIDTH)
            bar = "#" * filled + "-" * (WIDTH - filled)
            line = f"{self._label} [{bar}] {share:4.0%} {self._show(done)} / {self._show(total)}"
        else:
            line = f"{self._label} {self._show(done)}"
        if line == self._last:
            return
        # Pad over what a longer previous line left behind.
        self._stream.write("\r" + line.ljust(len(self._last)))
        self._stream.flush()
        self._last = line


def note(line: str, *, enabled: bool | None = None, stream: TextIO | None = None) -> None:
    """Tell the person at the terminal ``line`` on stderr; ``enabled`` as for ``Progress``."""
    stream = sys.stderr if stream is None else stream
    if enabled is None:
        enabled = _isatty(stream)
    if enabled:
        stream.write(line + "\n")
        stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
