"""``SqlClientRepository``: partner clients in the ``clients`` table, their current and
previous secret keys sealed under the master key (docs/design.md 5.7)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, exc, insert, select, update

from berkas.adapters.db.repositories.base import _NUL, _Sealed, _SqlRepository, _utc_or_none
from berkas.adapters.db.tables import clients
from berkas.adapters.db.writes import Writes
from berkas.adapters.sealing import (
    Sealer,
    SealingError,
    clear_value_message,
    client_context,
    is_sealed,
    previous_client_context,
)
from berkas.core.models import Client, client_exists, require_utc


class SqlClientRepository(_SqlRepository, _Sealed):
    """Partner clients in the ``clients`` table, their secret keys sealed."""

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    def add(self, client: Client) -> None:
        """Insert; raises ``Conflict`` (code ``client_exists``) on a duplicate id."""
        values = {
            "client_id": client.client_id,
            "secret_key": self.sealer.seal(
                client.secret_key.encode(), client_context(client.client_id)
            ),
            "enabled": client.enabled,
            "created_at": require_utc(client.created_at, "created_at"),
            "label": client.label,
            "secret_rotated_at": _utc_or_none(client.secret_rotated_at, "secret_rotated_at"),
            "previous_secret_key": (
                None
                if client.previous_secret_key is None
                else self.sealer.seal(
                    client.previous_secret_key.encode(), previous_client_context(client.client_id)
                )
            ),
            "previous_expires_at": _utc_or_none(client.previous_expires_at, "previous_expires_at"),
            "token_generation": client.token_generation,
        }
        try:
            with self._write() as connection:
                connection.execute(insert(clients).values(values))
        except exc.IntegrityError as error:
            raise client_exists(client.client_id) from error

    def get(self, client_id: str) -> Client | None:
        """The client with ``client_id``, or None."""
        if _NUL in client_id:
            return None
        with self._read() as connection:
            row = connection.execute(
                select(clients).where(clients.c.client_id == client_id)
            ).one_or_none()
        return None if row is None else self._client(row)

    def list(self) -> list[Client]:
        """Every client, oldest first."""
        with self._read() as connection:
            rows = connection.execute(
                select(clients).order_by(clients.c.created_at, clients.c.client_id)
            ).all()
        return [self._client(row) for row in rows]

    def _client(self, row: Row[Any]) -> Client:
        if not is_sealed(row.secret_key):
            # berkas seals every secret it writes, so a clear one was written around the
            # master key (or by a release before sealing, which `berkas secrets
            # seal-legacy` seals once): refused, or whoever can write one row could choose
            # a partner's secret. Nothing ever seals it automatically.
            raise SealingError(clear_value_message("clients.secret_key", row.client_id))
        secret = self.sealer.open(row.secret_key, client_context(row.client_id)).decode()
        previous = None
        if row.previous_secret_key is not None:
            # A previous secret is only ever written sealed (rotate_secret), never in clear.
            previous = self.sealer.open(
                row.previous_secret_key, previous_client_context(row.client_id)
            ).decode()
        return Client(
            client_id=row.client_id,
            secret_key=secret,
            enabled=bool(row.enabled),
            created_at=row.created_at,
            label=row.label,
            secret_rotated_at=row.secret_rotated_at,
            previous_secret_key=previous,
            previous_expires_at=row.previous_expires_at,
            token_generation=row.token_generation,
        )

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False when no such client. A disable also bumps
        the token generation: tokens minted before it stay dead after a later enable."""
        values: dict[str, Any] = {"enabled": enabled}
        if not enabled:
            values["token_generation"] = clients.c.token_generation + 1
        with self._write() as connection:
            result = connection.execute(
                update(clients).where(clients.c.client_id == client_id).values(values)
            )
        return result.rowcount > 0

    def set_label(self, client_id: str, label: str | None) -> bool:
        """Set (None: remove) the label; False when no such client."""
        with self._write() as connection:
            result = connection.execute(
                update(clients).where(clients.c.client_id == client_id).values(label=label)
            )
        return result.rowcount > 0

    def rotate_secret(
        self,
        client_id: str,
        secret_key: str,
        rotated_at: datetime,
        previous_expires_at: datetime | None,
    ) -> Client | None:
        """Make ``secret_key`` current; the replaced one verifies until
        ``previous_expires_at`` (None: at once no more). Returns the client as it was.

        One write transaction, the row read FOR UPDATE on PostgreSQL (SQLite's BEGIN
        IMMEDIATE already excludes other writers): two rotations at once leave the
        second's secret current and the first's as the previous one, never a secret that
        no rotation printed.
        """
        rotated_at = require_utc(rotated_at, "rotated_at")
        expires = _utc_or_none(previous_expires_at, "previous_expires_at")
        with self._write() as connection:
            row = connection.execute(
                select(clients).where(clients.c.client_id == client_id).with_for_update()
            ).one_or_none()
            if row is None:
                return None
            before = self._client(row)
            sealer = self.sealer
            previous = (
                None
                if expires is None
                # Resealed under its own context: the same bytes as the current column
                # would open as the current secret again.
                else sealer.seal(before.secret_key.encode(), previous_client_context(client_id))
            )
            connection.execute(
                update(clients)
                .where(clients.c.client_id == client_id)
                .values(
                    secret_key=sealer.seal(secret_key.encode(), client_context(client_id)),
                    secret_rotated_at=rotated_at,
                    previous_secret_key=previous,
                    previous_expires_at=expires,
                    # Tokens minted with the replaced secret stop working at once; the
                    # grace is for signing requests, not for old tokens.
                    token_generation=clients.c.token_generation + 1,
                )
            )
        return before

    def forget_expired_secrets(self, now: datetime) -> int:
        """Delete previous secrets whose grace ended by ``now``; returns how many."""
        with self._write() as connection:
            result = connection.execute(
                update(clients)
                .where(clients.c.previous_expires_at <= require_utc(now, "now"))
                .values(previous_secret_key=None, previous_expires_at=None)
            )
        return result.rowcount
