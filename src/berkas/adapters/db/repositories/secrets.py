"""``SqlServiceSecrets``: the service's named secrets (the link secret) in
``service_secrets``, sealed under the master key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from berkas.adapters.db.repositories.base import _insert_unless_taken, _Sealed, _SqlRepository
from berkas.adapters.db.tables import service_secrets
from berkas.adapters.db.writes import Writes
from berkas.adapters.sealing import Sealer, secret_context
from berkas.core.models import require_utc


class SqlServiceSecrets(_SqlRepository, _Sealed):
    """Named secrets of the service (the link secret) in ``service_secrets``, sealed."""

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    def get(self, name: str) -> bytes | None:
        """The opened secret called ``name``, or None."""
        with self._read() as connection:
            sealed = connection.execute(
                select(service_secrets.c.value).where(service_secrets.c.name == name)
            ).scalar_one_or_none()
        return None if sealed is None else self.sealer.open(sealed, secret_context(name))

    def ensure(self, name: str, value: bytes, now: datetime) -> bytes:
        """Store ``value`` as ``name`` unless a value exists; returns the one stored.

        Nodes starting together race here; the first insert wins and everyone returns it.
        """
        existing = self.get(name)
        if existing is not None:
            return existing
        row = {
            "name": name,
            "value": self.sealer.seal(value, secret_context(name)),
            "created_at": require_utc(now, "now"),
        }
        with self._write() as connection:
            _insert_unless_taken(connection, service_secrets, row)  # or another node did
            sealed = connection.execute(
                select(service_secrets.c.value).where(service_secrets.c.name == name)
            ).scalar_one()
        return self.sealer.open(sealed, secret_context(name))
