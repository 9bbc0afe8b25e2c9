"""``MemoryClientRepository``: partner clients in a dict."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from berkas.adapters.db.memory.tables import _Tables, _utc_or_none
from berkas.core.models import Client, client_exists, require_utc


class MemoryClientRepository:
    """Partner clients in a dict."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def add(self, client: Client) -> None:
        """Insert; raises ``Conflict`` (code ``client_exists``) on a duplicate id."""
        client = dataclasses.replace(
            client,
            created_at=require_utc(client.created_at, "created_at"),
            secret_rotated_at=_utc_or_none(client.secret_rotated_at, "secret_rotated_at"),
            previous_expires_at=_utc_or_none(client.previous_expires_at, "previous_expires_at"),
        )
        with self._tables.lock:
            if client.client_id in self._tables.clients:
                raise client_exists(client.client_id)
            self._tables.clients[client.client_id] = client

    def get(self, client_id: str) -> Client | None:
        """The client with ``client_id``, or None."""
        with self._tables.lock:
            return self._tables.clients.get(client_id)

    def list(self) -> list[Client]:
        """Every client, oldest first."""
        with self._tables.lock:
            found = list(self._tables.clients.values())
        return sorted(found, key=lambda client: (client.created_at, client.client_id))

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False when no such client. A disable bumps the
        token generation (tokens minted before it stay dead after a later enable)."""
        with self._tables.lock:
            client = self._tables.clients.get(client_id)
            if client is None:
                return False
            generation = client.token_generation + (0 if enabled else 1)
            self._tables.clients[client_id] = dataclasses.replace(
                client, enabled=enabled, token_generation=generation
            )
            return True

    def set_label(self, client_id: str, label: str | None) -> bool:
        """Set (None: remove) the label; False when no such client."""
        with self._tables.lock:
            client = self._tables.clients.get(client_id)
            if client is None:
                return False
            self._tables.clients[client_id] = dataclasses.replace(client, label=label)
            return True

    def rotate_secret(
        self,
        client_id: str,
        secret_key: str,
        rotated_at: datetime,
        previous_expires_at: datetime | None,
    ) -> Client | None:
        """Make ``secret_key`` current; the replaced one verifies until
        ``previous_expires_at`` (None: at once no more). Returns the client as it was."""
        rotated_at = require_utc(rotated_at, "rotated_at")
        expires = _utc_or_none(previous_expires_at, "previous_expires_at")
        with self._tables.lock:
            before = self._tables.clients.get(client_id)
            if before is None:
                return None
            self._tables.clients[client_id] = dataclasses.replace(
                before,
                secret_key=secret_key,
                secret_rotated_at=rotated_at,
                previous_secret_key=None if expires is None else before.secret_key,
                previous_expires_at=expires,
                token_generation=before.token_generation + 1,
            )
            return before

    def forget_expired_secrets(self, now: datetime) -> int:
        """Delete previous secrets whose grace ended by ``now``; returns how many."""
        now = require_utc(now, "now")
        with self._tables.lock:
            expired = [
                client
                for client in self._tables.clients.values()
                if client.previous_expires_at is not None and client.previous_expires_at <= now
            ]
            for client in expired:
                self._tables.clients[client.client_id] = dataclasses.replace(
                    client, previous_secret_key=None, previous_expires_at=None
                )
        return len(expired)
