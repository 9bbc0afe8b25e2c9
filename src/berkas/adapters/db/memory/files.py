"""``MemoryFileRepository``: stored files, their keys and the pending-blob intents in
dicts, including what ``berkas files upgrade`` does to them."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from berkas.adapters.db.memory.tables import _Tables, _utc_or_none
from berkas.core.listing import FileFilter, Position
from berkas.core.models import (
    EventKind,
    FileEvent,
    StoredFile,
    UpgradeBacklog,
    duplicate_file,
    file_on_hold,
    require_utc,
    unknown_client,
)


class MemoryFileRepository:
    """Stored-file metadata in a dict, with the same key uniqueness as the table."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def add(self, stored: StoredFile, event: FileEvent | None = None) -> str | None:
        """Insert; ``Conflict`` (``duplicate_id``) or ``InvalidRequest`` (``unknown_client``).
        Returns the earlier file with the same bytes, as ``duplicate_of`` would."""
        stored = dataclasses.replace(
            stored,
            created_at=require_utc(stored.created_at, "created_at"),
            retained_until=_utc_or_none(stored.retained_until, "retained_until"),
        )
        with self._tables.lock:
            if stored.id in self._tables.files or stored.key in self._tables.keys:
                raise duplicate_file(stored)
            if stored.client_id not in self._tables.clients:
                raise unknown_client(stored.client_id)
            earlier = self._first(stored.client_id, stored.category, stored.sha256)
            self._tables.files[stored.id] = stored
            self._tables.keys[stored.key] = stored.id
            self._tables.pending.pop(stored.key, None)
            if event is not None:
                self._tables.append(event)
        return earlier

    def remove(self, file_id: str, node_id: int, event: FileEvent) -> StoredFile | None:
        """Delete the row, reserve its key for the blob removal, append ``event``; None
        when there is no such row, ``Conflict`` (``file_on_hold``) while it is on hold."""
        with self._tables.lock:
            held = self._tables.files.get(file_id)
            if held is not None and held.legal_hold:
                raise file_on_hold(file_id)
            removed = self._tables.files.pop(file_id, None)
            if removed is None:
                return None
            del self._tables.keys[removed.key]
            self._tables.pending.setdefault(removed.key, (node_id, require_utc(event.at, "at")))
            self._tables.append(event)
            return removed

    def revoke_links(
        self, file_id: str, event: FileEvent, *, generation: int, data_key: str | None
    ) -> int | None:
        """Move the link generation from ``generation`` to the next (storing ``data_key``
        when given) and append ``event``; None when gone or no longer at ``generation``."""
        with self._tables.lock:
            stored = self._tables.files.get(file_id)
            if stored is None or stored.link_generation != generation:
                return None
            self._tables.files[file_id] = dataclasses.replace(
                stored,
                link_generation=generation + 1,
                data_key=stored.data_key if data_key is None else data_key,
            )
            self._tables.append(event)
            return generation + 1

    def set_hold(self, file_id: str, hold: bool, event: FileEvent) -> bool:
        """Set or lift the legal hold; False when no such file."""
        with self._tables.lock:
            stored = self._tables.files.get(file_id)
            if stored is None:
                return False
            self._tables.files[file_id] = dataclasses.replace(stored, legal_hold=hold)
            self._tables.append(event)
            return True

    def expired(self, now: datetime, limit: int) -> list[StoredFile]:
        """Files whose retention ended by ``now``, not on hold, oldest retention first."""
        now = require_utc(now, "now")
        with self._tables.lock:
            due = [
                f
                for f in self._tables.files.values()
                if f.retained_until is not None and f.retained_until <= now and not f.legal_hold
            ]
        due.sort(key=lambda f: (f.retained_until or now, f.id))
        return due[:limit]

    def position_of(self, client_id: str | None, file_id: str) -> Position | None:
        """As the table's two lookups: the row, else the file's ``uploaded`` event."""
        with self._tables.lock:
            stored = self._tables.files.get(file_id)
            if stored is not None and client_id in (None, stored.client_id):
                return Position(stored.created_at, stored.id)
            for event in self._tables.events:
                if (
                    event.file_id == file_id
                    and event.kind is EventKind.UPLOADED
                    and client_id in (None, event.client_id)
                ):
                    return Position(event.at, file_id)
        return None

    def listed(
        self,
        client_id: str | None,
        match: FileFilter,
        *,
        limit: int,
        after: Position | None = None,
        before: Position | None = None,
    ) -> list[StoredFile]:
        """Up to ``limit`` matching files, newest first past ``after``; with ``before``
        the ones just newer than it, nearest first (as the table's query)."""
        with self._tables.lock:
            rows = [
                f
                for f in self._tables.files.values()
                if (client_id is None or f.client_id == client_id)
                and (match.category is None or f.category == match.category)
                and (match.code is None or f.code == match.code)
                and (match.created_gte is None or f.created_at >= match.created_gte)
                and (match.created_lt is None or f.created_at < match.created_lt)
                and (after is None or (f.created_at, f.id) < (after.created_at, after.id))
                and (before is None or (f.created_at, f.id) > (before.created_at, before.id))
            ]
        rows.sort(key=lambda f: (f.created_at, f.id), reverse=before is None)
        return rows[:limit]

    def duplicate_of(self, client_id: str, category: str, sha256: str) -> str | None:
        """The first file this client stored in ``category`` with these bytes, or None."""
        with self._tables.lock:
            return self._first(client_id, category, sha256)

    def _first(self, client_id: str, category: str, sha256: str) -> str | None:
        same = [
            f
            for f in self._tables.files.values()
            if (f.client_id, f.category, f.sha256) == (client_id, category, sha256)
        ]
        same.sort(key=lambda f: (f.created_at, f.id))
        return same[0].id if same else None

    def reserve_key(self, key: str, node_id: int, created_at: datetime) -> None:
        """Record the intent to write ``key`` (idempotent)."""
        created_at = require_utc(created_at, "created_at")
        with self._tables.lock:
            self._tables.pending.setdefault(key, (node_id, created_at))

    def release_key(self, key: str) -> None:
        """Forget the intent to write ``key``."""
        with self._tables.lock:
            self._tables.pending.pop(key, None)

    def reserved_keys(self, node_id: int) -> list[str]:
        """Keys ``node_id`` reserved and never committed or released, oldest first."""
        with self._tables.lock:
            mine = [
                (at, key) for key, (node, at) in self._tables.pending.items() if node == node_id
            ]
        return [key for _, key in sorted(mine)]

    def get(self, file_id: str) -> StoredFile | None:
        """The file with ``file_id``, or None."""
        with self._tables.lock:
            return self._tables.files.get(file_id)

    def get_by_key(self, key: str) -> StoredFile | None:
        """The file stored under blob ``key``, or None."""
        with self._tables.lock:
            file_id = self._tables.keys.get(key)
            return None if file_id is None else self._tables.files[file_id]

    def backlog(self) -> UpgradeBacklog:
        """Files stored in clear, never checked for metadata, without retention by category."""
        with self._tables.lock:
            stored = list(self._tables.files.values())
        without: dict[str, int] = {}
        for f in stored:
            if f.retained_until is None:
                without[f.category] = without.get(f.category, 0) + 1
        in_clear = sum(f.data_key is None for f in stored)
        unchecked = sum(not f.metadata_checked for f in stored)
        both = sum(f.data_key is None and not f.metadata_checked for f in stored)
        return UpgradeBacklog(in_clear, unchecked, without, both)

    def stamp_retention(
        self, category: str, span: timedelta, at: datetime, actor: str | None = None
    ) -> int:
        """``retained_until = created_at + span`` where it is None, with an event each."""
        at = require_utc(at, "at")
        days = f"{span.days} days" if span == timedelta(days=span.days) else f"{span} (h:mm:ss)"
        if span.microseconds or span < timedelta(0):
            raise ValueError(
                f"a retention span is a whole, non-negative number of seconds, got {span}"
            )
        with self._tables.lock:
            due = [
                f
                for f in self._tables.files.values()
                if f.category == category and f.retained_until is None
            ]
            for f in due:
                self._tables.files[f.id] = dataclasses.replace(
                    f, retained_until=f.created_at + span
                )
                detail = f"retention stamped: {days} from upload"
                self._tables.append(
                    FileEvent(f.id, f.client_id, EventKind.UPGRADED, at, detail=detail, actor=actor)
                )
        return len(due)

    def outdated(
        self, *, after: str, limit: int, in_clear: bool, unchecked: bool
    ) -> list[StoredFile]:
        """A page, in id order, of files in clear and/or not checked for metadata."""
        with self._tables.lock:
            found = [
                f
                for f in self._tables.files.values()
                if f.id > after
                and ((in_clear and f.data_key is None) or (unchecked and not f.metadata_checked))
            ]
        return sorted(found, key=lambda f: f.id)[:limit]

    def upgrade(
        self, stored: StoredFile, upgraded: StoredFile, node_id: int, event: FileEvent
    ) -> bool:
        """The conditional swap of ``berkas files upgrade`` (``FileRepository.upgrade``)."""
        with self._tables.lock:
            current = self._tables.files.get(stored.id)
            if (
                current is None
                or current.key != stored.key
                or current.link_generation != stored.link_generation
            ):
                return False
            moved = upgraded.key != stored.key
            if moved and upgraded.key not in self._tables.pending:
                return False
            self._tables.files[stored.id] = dataclasses.replace(
                current,
                key=upgraded.key,
                data_key=upgraded.data_key,
                size=upgraded.size,
                sha256=upgraded.sha256,
                width=upgraded.width,
                height=upgraded.height,
                metadata_removed=upgraded.metadata_removed,
                metadata_checked=upgraded.metadata_checked,
            )
            if moved:
                del self._tables.keys[stored.key]
                self._tables.keys[upgraded.key] = stored.id
                del self._tables.pending[upgraded.key]
                self._tables.pending.setdefault(stored.key, (node_id, require_utc(event.at, "at")))
            self._tables.append(event)
            return True
