"""``SqlSealedValues``: every sealed column at once, for ``berkas secrets`` (status,
rekey, seal-legacy) and the start-up check that none holds a value in clear
(docs/design.md 5.7)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    delete,
    func,
    insert,
    select,
    update,
)

from berkas.adapters.db.engine import compact
from berkas.adapters.db.repositories.base import (
    DATA_KEY_BINDING,
    _insert_unless_taken,
    _Sealed,
    _SqlRepository,
    translate_errors,
)
from berkas.adapters.db.tables import (
    clients,
    files,
    legacy_clear_secrets,
    master_keys,
    replays,
    service_secrets,
    signing_keys,
)
from berkas.adapters.db.writes import Writes
from berkas.adapters.sealing import (
    PREFIX,
    Sealer,
    SealingError,
    client_context,
    data_key_context,
    is_sealed,
    key_context,
    legacy_data_key_context,
    previous_client_context,
    replay_context,
    sealed_kid,
    secret_context,
)
from berkas.core.models import DataKeyBinding, require_utc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _SealedColumn:
    """One column that holds sealed values, and what each value is bound to."""

    kind: str  # as ``berkas secrets status`` names it
    name: str  # table.column, as error messages name it
    value: Column[Any]
    row_id: Column[Any]  # names the row in messages
    context: Callable[[Row[Any]], str]
    binary: bool = False
    where: ColumnElement[bool] | None = None

    def select(self) -> Select[Any]:
        columns = self.value.table.c
        query = select(*columns).where(self.value.is_not(None))
        return query if self.where is None else query.where(self.where)

    def clear(self) -> ColumnElement[bool]:
        """A filter for the values of this column that are not sealed."""
        if self.binary:
            return func.substr(self.value, 1, len(PREFIX)) != PREFIX.encode()
        return self.value.not_like(f"{PREFIX}%")

    def text(self, row: Row[Any]) -> str:
        raw = row._mapping[self.value]
        return bytes(raw).decode("ascii", errors="replace") if self.binary else raw


_data_key_current = files.c.data_key_binding == DATA_KEY_BINDING
_LEGACY_DATA_KEYS = _SealedColumn(
    # Data keys 0007 and older sealed to the file id alone, until the next start
    # rebinds them (SqlSealedValues.rebind_data_keys).
    "document data keys",
    "files.data_key",
    files.c.data_key,
    files.c.id,
    lambda row: legacy_data_key_context(row.id),
    where=files.c.data_key_binding.is_(None),
)
_SEALED_COLUMNS = (
    _SealedColumn(
        "client secret keys",
        "clients.secret_key",
        clients.c.secret_key,
        clients.c.client_id,
        lambda row: client_context(row.client_id),
    ),
    _SealedColumn(
        # Replaced by a rotation, verifying until their grace ends (NULL otherwise).
        "previous client secret keys",
        "clients.previous_secret_key",
        clients.c.previous_secret_key,
        clients.c.client_id,
        lambda row: previous_client_context(row.client_id),
    ),
    _SealedColumn(
        "signing keys",
        "signing_keys.private_key",
        signing_keys.c.private_key,
        signing_keys.c.kid,
        lambda row: key_context(row.kid),
    ),
    _SealedColumn(
        "service secrets",
        "service_secrets.value",
        service_secrets.c.value,
        service_secrets.c.name,
        lambda row: secret_context(row.name),
    ),
    _SealedColumn(
        # Each encrypted document's own key, bound to its id, owner, object key and link
        # generation; NULL for documents stored in the clear.
        "document data keys",
        "files.data_key",
        files.c.data_key,
        files.c.id,
        lambda row: data_key_context(
            DataKeyBinding(row.id, row.client_id, row.key, row.link_generation)
        ),
        where=_data_key_current,
    ),
    _LEGACY_DATA_KEYS,
    _SealedColumn(
        # The answers a Request-Id replay gives again (a bearer token for POST /token).
        "replay answers",
        "replays.body",
        replays.c.body,
        replays.c.request_id,
        lambda row: replay_context(row.client_id, row.request_id, row.status),
        binary=True,
    ),
)
# The marker `berkas secrets seal-legacy` leaves (a service secret, so it is sealed): once
# it is there the command refuses to seal anything again.
LEGACY_SEALED = "legacy-clear-secrets-sealed"


class SqlSealedValues(_SqlRepository, _Sealed):
    """Every sealed value of the database at once: what ``berkas secrets`` reports and
    reseals under the current master key, and the start-up checks that no sealed column
    holds a value in clear.

    Nothing here ever seals a clear value it finds, but for ``seal_legacy``: whoever can
    write one row without the master key would otherwise choose a partner's secret or a
    signing key, and the next start would seal it and trust it.
    """

    def __init__(self, engine: Engine, sealer: Sealer | None, writes: Writes | None = None) -> None:
        _SqlRepository.__init__(self, engine, writes)
        _Sealed.__init__(self, sealer)

    @property
    def master_key_ids(self) -> tuple[str, ...]:
        """The master keys this process holds, the one that seals first."""
        return self.sealer.kids

    def by_master_key(self) -> dict[str, dict[str, int]]:
        """For each kind of secret, how many values each master key id seals
        (``clear`` for values not sealed at all)."""
        report: dict[str, dict[str, int]] = {column.kind: {} for column in _SEALED_COLUMNS}
        with self._read() as connection:
            for column in _SEALED_COLUMNS:
                counts = report[column.kind]
                for row in connection.execute(column.select()):
                    kid = sealed_kid(column.text(row)) or "clear"
                    counts[kid] = counts.get(kid, 0) + 1
        return report

    def clear_values(self) -> list[tuple[str, str]]:
        """Every value of a sealed column that is not sealed: (column, row), in order."""
        found: list[tuple[str, str]] = []
        with self._read() as connection:
            for column in _SEALED_COLUMNS:
                query = select(column.row_id).where(column.value.is_not(None), column.clear())
                rows = connection.execute(query.order_by(column.row_id)).scalars()
                found.extend((column.name, str(row_id)) for row_id in rows)
        return sorted(set(found))

    def legacy_clear(self) -> list[str]:
        """Client ids migration 0008 found with a secret in clear, not sealed since."""
        with self._read() as connection:
            rows = connection.execute(
                select(legacy_clear_secrets.c.client_id)
                .join(clients, clients.c.client_id == legacy_clear_secrets.c.client_id)
                .where(clients.c.secret_key.not_like(f"{PREFIX}%"))
                .order_by(legacy_clear_secrets.c.client_id)
            ).scalars()
            return list(rows)

    def reseal(self) -> dict[str, int]:
        """Reseal under the current master key every value sealed under an older one; one
        transaction. A value in clear is left as it is (``clear_values`` names it).
        Returns how many values of each kind were resealed."""
        sealer = self.sealer
        done: dict[str, int] = {column.kind: 0 for column in _SEALED_COLUMNS}
        with self._write() as connection:
            for column in _SEALED_COLUMNS:
                for row in connection.execute(column.select()).all():
                    stored = column.text(row)
                    if not is_sealed(stored) or not sealer.needs_reseal(stored):
                        continue
                    context = column.context(row)
                    sealed = sealer.seal(sealer.open(stored, context), context)
                    self._store(connection, column, row, sealed)
                    done[column.kind] += 1
        if any(done.values()):
            # What the older key sealed must not linger where that key would open it.
            with translate_errors():
                compact(self._engine)
        return done

    def rebind_data_keys(self) -> int:
        """Reseal each data key still bound to its file id alone (0007 and older) to the
        file's id, owner, object key and link generation; returns how many. A key that
        does not open under its old binding is left alone and logged (its document is
        then refused as unreadable, never served)."""
        sealer = self.sealer
        legacy = _LEGACY_DATA_KEYS
        rebound = 0
        with self._write() as connection:
            for row in connection.execute(legacy.select()).all():
                try:
                    key = sealer.open(row.data_key, legacy.context(row))
                except SealingError as error:
                    log.error("the data key of %s cannot be rebound: %s", row.id, error)
                    continue
                binding = DataKeyBinding(row.id, row.client_id, row.key, row.link_generation)
                connection.execute(
                    update(files)
                    .where(files.c.id == row.id, files.c.data_key_binding.is_(None))
                    .values(
                        data_key=sealer.seal(key, data_key_context(binding)),
                        data_key_binding=DATA_KEY_BINDING,
                    )
                )
                rebound += 1
        return rebound

    def seal_legacy(self, now: datetime) -> list[str]:
        """Seal the client secrets migration 0008 found in clear (an older release wrote
        them) and nothing else; once. Returns the client ids sealed. ``SealingError`` when
        it already ran, or when nothing is listed."""
        sealer = self.sealer
        with self._write() as connection:
            marker = connection.execute(
                select(service_secrets.c.value).where(service_secrets.c.name == LEGACY_SEALED)
            ).scalar_one_or_none()
            if marker is not None:
                when = sealer.open(marker, secret_context(LEGACY_SEALED)).decode()
                raise SealingError(
                    f"the client secrets an older release stored in clear were sealed on "
                    f"{when}; this is done once only. A clear value found since was "
                    "written into the database without the master key and is not sealed"
                )
            rows = connection.execute(
                select(clients.c.client_id, clients.c.secret_key)
                .join(legacy_clear_secrets, clients.c.client_id == legacy_clear_secrets.c.client_id)
                .where(clients.c.secret_key.not_like(f"{PREFIX}%"))
                .order_by(clients.c.client_id)
            ).all()
            if not rows:
                raise SealingError(
                    "no client secret stored in clear by an older release is listed; "
                    "nothing was sealed"
                )
            for client_id, secret in rows:
                connection.execute(
                    update(clients)
                    .where(clients.c.client_id == client_id)
                    .values(secret_key=sealer.seal(secret.encode(), client_context(client_id)))
                )
            connection.execute(delete(legacy_clear_secrets))
            connection.execute(
                insert(service_secrets).values(
                    name=LEGACY_SEALED,
                    value=sealer.seal(
                        now.isoformat(timespec="seconds").encode(), secret_context(LEGACY_SEALED)
                    ),
                    created_at=require_utc(now, "now"),
                )
            )
        return [client_id for client_id, _ in rows]

    def record_master_key(self, now: datetime) -> None:
        """Note when the current master key first sealed here (kept if already noted)."""
        values = {"kid": self.sealer.current.kid, "first_used_at": require_utc(now, "now")}
        self._run(lambda connection: _insert_unless_taken(connection, master_keys, values))

    def master_key_ages(self) -> dict[str, datetime]:
        """When each master key id first sealed in this database."""
        with self._read() as connection:
            rows = connection.execute(select(master_keys.c.kid, master_keys.c.first_used_at))
            return {row.kid: row.first_used_at for row in rows}

    @staticmethod
    def _store(connection: Connection, column: _SealedColumn, row: Row[Any], sealed: str) -> None:
        table = column.value.table
        match = [key == row._mapping[key] for key in table.primary_key.columns]
        value: str | bytes = sealed.encode("ascii") if column.binary else sealed
        connection.execute(update(table).where(*match).values({column.value.name: value}))
