"""``MemoryReplayRepository``: Request-Id reservations and their answers in a dict."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from berkas.adapters.db.memory.tables import _Tables
from berkas.core.models import UPLOAD_REPLAY_PREFIX, ReplayRecord, require_utc


class MemoryReplayRepository:
    """Request-Id reservations in a dict; the lock makes ``begin`` atomic."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def begin(self, record: ReplayRecord) -> ReplayRecord | None:
        """Reserve (client_id, request_id); None when newly reserved, else the existing row."""
        record = dataclasses.replace(
            record, created_at=require_utc(record.created_at, "created_at")
        )
        with self._tables.lock:
            existing = self._tables.replays.get((record.client_id, record.request_id))
            if existing is not None:
                return existing
            self._tables.replays[(record.client_id, record.request_id)] = record
            return None

    def finish(self, client_id: str, request_id: str, status: int, body: bytes) -> None:
        """Record the response; a reservation already released or purged stays absent."""
        with self._tables.lock:
            existing = self._tables.replays.get((client_id, request_id))
            if existing is not None:
                self._tables.replays[(client_id, request_id)] = dataclasses.replace(
                    existing, status=status, body=bytes(body)
                )

    def release(self, client_id: str, request_id: str) -> None:
        """Forget a reservation so a retry of the same Request-Id runs again."""
        with self._tables.lock:
            self._tables.replays.pop((client_id, request_id), None)

    def release_stale(self, client_id: str, request_id: str, started_before: datetime) -> bool:
        """Forget a reservation left unanswered since before ``started_before``."""
        started_before = require_utc(started_before, "started_before")
        with self._tables.lock:
            record = self._tables.replays.get((client_id, request_id))
            if record is None or record.body is not None or record.created_at >= started_before:
                return False
            del self._tables.replays[(client_id, request_id)]
            return True

    def purge_before(self, cutoff: datetime, *, uploads_before: datetime) -> int:
        """Delete signed-request records created before ``cutoff`` and upload records
        created before ``uploads_before``; returns how many."""
        cutoff = require_utc(cutoff, "cutoff")
        uploads_before = require_utc(uploads_before, "uploads_before")

        def expired(record: ReplayRecord) -> bool:
            upload = record.request_id.startswith(UPLOAD_REPLAY_PREFIX)
            return record.created_at < (uploads_before if upload else cutoff)

        with self._tables.lock:
            old = [key for key, rec in self._tables.replays.items() if expired(rec)]
            for key in old:
                del self._tables.replays[key]
        return len(old)
