"""File ids (docs/design.md 2.4): ``<prefix>-<node:4>-<epoch ms:13>``, minted per node.

Owns the id format and a thread-safe minter whose ids strictly increase.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

# [0-9] rather than \d: in a str pattern \d also matches non-ASCII digits.
ID_PATTERN = re.compile(r"[A-Z]{3}-[0-9]{4}-[0-9]{13}")
_PREFIX = re.compile(r"[A-Z]{3}")
MAX_NODE = 9999
# Thirteen digits hold epoch milliseconds until the year 2286.
_MAX_EPOCH_MS = 10**13 - 1


def is_file_id(value: str) -> bool:
    """Return True when ``value`` has the shape of a file id."""
    return ID_PATTERN.fullmatch(value) is not None


def node_of(value: str) -> int | None:
    """The node number a file id embeds; None when ``value`` is no file id."""
    if not is_file_id(value):
        return None
    return int(value[4:8])


@dataclass(frozen=True, slots=True)
class MintedId:
    """A freshly minted id and the epoch milliseconds it encodes."""

    id: str
    epoch_ms: int


class IdMinter:
    """Mints ids for one node; ids from one minter strictly increase.

    Uniqueness across nodes comes from the node number (configured per node); within a
    node, from issuing each millisecond at most once: when the clock reports a
    millisecond at or before the last one issued (a burst, or the clock stepping back),
    the minter issues last + 1 instead. A burst therefore runs ahead of the wall clock
    by one millisecond per extra id; the metadata store's unique id is the backstop for
    a restart that happens before the clock catches up.
    """

    def __init__(self, node: int, now_ms: Callable[[], int]) -> None:
        if isinstance(node, bool) or not isinstance(node, int) or not 0 <= node <= MAX_NODE:
            raise ValueError(f"node must be an integer from 0 to {MAX_NODE}, got {node!r}")
        self._node = node
        self._now_ms = now_ms
        self._last = -1
        self._lock = threading.Lock()

    @property
    def node(self) -> int:
        """This minter's node number."""
        return self._node

    def mint(self, prefix: str) -> MintedId:
        """Return a new id with ``prefix`` (three upper-case letters, e.g. ``DCM``)."""
        if _PREFIX.fullmatch(prefix) is None:
            raise ValueError(f"id prefix must be three upper-case letters, got {prefix!r}")
        with self._lock:
            epoch_ms = max(self._now_ms(), self._last + 1)
            if epoch_ms > _MAX_EPOCH_MS:
                raise ValueError(f"epoch milliseconds {epoch_ms} do not fit in 13 digits")
            self._last = epoch_ms
        return MintedId(id=f"{prefix}-{self._node:04d}-{epoch_ms:013d}", epoch_ms=epoch_ms)
