"""``SqlReplayRepository``: Request-Id reservations and the answers they got, in
``replays``, each answer sealed under the master key (docs/design.md 2.1, 3.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, delete, or_, select, update

from berkas.adapters.db.repositories.base import _insert_unless_taken, _Sealed, _SqlRepository
from berkas.adapters.db.tables import replays
from berkas.adapters.db.writes import Writes
from berkas.adapters.sealing import (
    Sealer,
    SealingError,
    clear_value_message,
    is_sealed,
    replay_context,
)
from berkas.core.codes import Code
from berkas.core.errors import Unavailable
from berkas.core.models import UPLOAD_REPLAY_PREFIX, ReplayRecord, require_utc

# begin() re-reads after losing the insert race; if the winner released the reservation
# in between, the insert is tried again (bounded: each round means real progress elsewhere).
_BEGIN_ATTEMPTS = 5


class SqlReplayRepository(_SqlRepository, _Sealed):
    """Request-Id reservations and the responses they got, in the ``replays`` table.

    A response body is sealed under the master key, bound to the client, the Request-Id
    and the status: the answer to ``POST /token`` is a live bearer token, and a dump, a
    replica or a read-only SQL account must not yield it.
    """

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    def _seal(self, client_id: str, request_id: str, status: int | None, body: bytes) -> bytes:
        context = replay_context(client_id, request_id, status)
        return self.sealer.seal(body, context).encode("ascii")

    def _replay(self, row: Row[Any]) -> ReplayRecord:
        body = None
        if row.body is not None:
            stored = bytes(row.body).decode("ascii", errors="replace")
            if not is_sealed(stored):
                raise SealingError(clear_value_message("replays.body", row.request_id))
            context = replay_context(row.client_id, row.request_id, row.status)
            body = self.sealer.open(stored, context)
        return ReplayRecord(
            client_id=row.client_id,
            request_id=row.request_id,
            fingerprint=row.fingerprint,
            status=row.status,
            body=body,
            created_at=row.created_at,
        )

    def begin(self, record: ReplayRecord) -> ReplayRecord | None:
        """Reserve (client_id, request_id); None when newly reserved, else the existing row.

        The primary key decides between racing nodes: exactly one INSERT succeeds, the
        others hit the unique violation and read the winner's row.
        """
        values = {
            "client_id": record.client_id,
            "request_id": record.request_id,
            "fingerprint": record.fingerprint,
            "status": record.status,
            "body": (
                None
                if record.body is None
                else self._seal(record.client_id, record.request_id, record.status, record.body)
            ),
            "created_at": require_utc(record.created_at, "created_at"),
        }

        def reserve(connection: Connection) -> Row[Any] | bool | None:
            if _insert_unless_taken(connection, replays, values):
                return True
            # Read on this connection: it also sees a reservation made earlier in the
            # same (group-committed) transaction.
            return connection.execute(
                select(replays).where(
                    replays.c.client_id == record.client_id,
                    replays.c.request_id == record.request_id,
                )
            ).one_or_none()

        for _ in range(_BEGIN_ATTEMPTS):
            # One write (the INSERT; the SELECT after a clash writes nothing).
            row = self._run(reserve, one_statement=True)
            if row is True:
                return None
            if isinstance(row, Row):
                return self._replay(row)
            # Released in between: try to reserve again.
        raise Unavailable(
            f"Request-Id {record.request_id!r} is being reserved and released repeatedly; "
            "retry the request.",
            code=Code.DATABASE_UNAVAILABLE,
        )

    def finish(self, client_id: str, request_id: str, status: int, body: bytes) -> None:
        """Record the response; a reservation already released or purged stays absent."""
        with self._write() as connection:
            connection.execute(
                update(replays)
                .where(replays.c.client_id == client_id, replays.c.request_id == request_id)
                .values(status=status, body=self._seal(client_id, request_id, status, body))
            )

    def release(self, client_id: str, request_id: str) -> None:
        """Forget a reservation so a retry of the same Request-Id runs again."""
        with self._write() as connection:
            connection.execute(
                delete(replays).where(
                    replays.c.client_id == client_id, replays.c.request_id == request_id
                )
            )

    def release_stale(self, client_id: str, request_id: str, started_before: datetime) -> bool:
        """Forget a reservation left unanswered since before ``started_before``."""
        with self._write() as connection:
            result = connection.execute(
                delete(replays).where(
                    replays.c.client_id == client_id,
                    replays.c.request_id == request_id,
                    replays.c.body.is_(None),
                    replays.c.created_at < require_utc(started_before, "started_before"),
                )
            )
        return bool(result.rowcount)

    def purge_before(self, cutoff: datetime, *, uploads_before: datetime) -> int:
        """Delete signed-request records created before ``cutoff`` and upload records
        (``UPLOAD_REPLAY_PREFIX``) created before ``uploads_before``; returns how many."""
        upload = replays.c.request_id.startswith(UPLOAD_REPLAY_PREFIX, autoescape=True)
        with self._write() as connection:
            result = connection.execute(
                delete(replays).where(
                    or_(
                        and_(~upload, replays.c.created_at < require_utc(cutoff, "cutoff")),
                        and_(upload, replays.c.created_at < require_utc(uploads_before, "at")),
                    )
                )
            )
        return result.rowcount

    def _get(self, client_id: str, request_id: str) -> ReplayRecord | None:
        with self._read() as connection:
            row = connection.execute(
                select(replays).where(
                    replays.c.client_id == client_id, replays.c.request_id == request_id
                )
            ).one_or_none()
        return None if row is None else self._replay(row)
