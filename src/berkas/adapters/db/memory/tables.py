"""``_Tables``: the rows every in-memory repository shares, and the small helpers they
have in common."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime

from berkas.core.models import Client, FileEvent, NodeLease, ReplayRecord, StoredFile, require_utc


class _Tables:
    """The rows, guarded by one lock as a database would serialise writers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, Client] = {}
        self.files: dict[str, StoredFile] = {}
        self.keys: dict[str, str] = {}
        self.replays: dict[tuple[str, str], ReplayRecord] = {}
        self.pending: dict[str, tuple[int, datetime]] = {}
        self.leases: dict[int, NodeLease] = {}
        self.events: list[FileEvent] = []
        self.tasks: dict[str, tuple[str, datetime]] = {}

    def append(self, event: FileEvent) -> None:
        """Append under the lock (the caller holds it)."""
        event = dataclasses.replace(
            event,
            at=require_utc(event.at, "at"),
            id=len(self.events) + 1,
            user_agent=None if event.user_agent is None else event.user_agent[:512],
        )
        self.events.append(event)


def _utc_or_none(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else require_utc(value, field)
