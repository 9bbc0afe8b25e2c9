"""``SqlKeyStore``: the RSA signing keys in ``signing_keys`` (an
``adapters.keys.KeyStore``), sealed under the master key."""

from __future__ import annotations

from sqlalchemy import Engine, delete, exc, insert, select, update

from berkas.adapters.db.repositories.base import _Sealed, _SqlRepository
from berkas.adapters.db.tables import signing_keys
from berkas.adapters.db.writes import Writes
from berkas.adapters.keys import StoredKey
from berkas.adapters.sealing import Sealer, key_context
from berkas.core.models import require_utc


class SqlKeyStore(_SqlRepository, _Sealed):
    """The signing keys in ``signing_keys`` (an ``adapters.keys.KeyStore``), sealed."""

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    def index(self) -> list[StoredKey]:
        """Every key's kid and dates; no private key is read."""
        columns = (signing_keys.c.kid, signing_keys.c.created_at, signing_keys.c.retired_at)
        with self._read() as connection:
            rows = connection.execute(select(*columns)).all()
        return [StoredKey(row.kid, row.created_at, row.retired_at) for row in rows]

    def private_pem(self, kid: str) -> bytes | None:
        """The opened PEM of ``kid``; None when no such key."""
        with self._read() as connection:
            sealed = connection.execute(
                select(signing_keys.c.private_key).where(signing_keys.c.kid == kid)
            ).scalar_one_or_none()
        return None if sealed is None else self.sealer.open(sealed, key_context(kid))

    def add(self, key: StoredKey, pem: bytes, *, replace_current: bool) -> bool:
        """Insert ``key`` (retiring the current one first if asked); False if refused."""
        current = key.retired_at is None
        values = {
            "kid": key.kid,
            "created_at": require_utc(key.created_at, "created_at"),
            "retired_at": (
                None if key.retired_at is None else require_utc(key.retired_at, "retired_at")
            ),
            "is_current": True if current else None,
            "private_key": self.sealer.seal(pem, key_context(key.kid)),
        }
        try:
            with self._write() as connection:
                if current and replace_current:
                    connection.execute(
                        update(signing_keys)
                        .where(signing_keys.c.is_current.is_(True))
                        .values(is_current=None, retired_at=values["created_at"])
                    )
                connection.execute(insert(signing_keys).values(values))
        except exc.IntegrityError:
            # The kid exists, or another key became current first (the unique constraint
            # on is_current): nothing of this attempt was stored.
            return False
        return True

    def remove(self, kids: list[str]) -> None:
        """Delete the keys named."""
        with self._write() as connection:
            connection.execute(delete(signing_keys).where(signing_keys.c.kid.in_(kids)))
