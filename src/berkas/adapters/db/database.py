"""``SqlDatabase``: the metadata store on SQLite or PostgreSQL, and its schema migrations.

The schema is only ever created or changed by the alembic revisions in ``migrations/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from berkas.adapters.db.engine import WRITE_OPTION, build_engine, compact, lock_waits
from berkas.adapters.db.migrations import HEAD
from berkas.adapters.db.repositories.audit import SqlAuditLog
from berkas.adapters.db.repositories.base import translate_errors
from berkas.adapters.db.repositories.clients import SqlClientRepository
from berkas.adapters.db.repositories.files import SqlFileRepository
from berkas.adapters.db.repositories.keys import SqlKeyStore
from berkas.adapters.db.repositories.leases import SqlNodeLeaseRepository, SqlTaskLeases
from berkas.adapters.db.repositories.replays import SqlReplayRepository
from berkas.adapters.db.repositories.sealed import SqlSealedValues
from berkas.adapters.db.repositories.secrets import SqlServiceSecrets
from berkas.adapters.db.writes import DirectWrites, GroupCommit, Writes, unavailable
from berkas.adapters.sealing import Sealer
from berkas.core.codes import Code
from berkas.core.errors import FULL_BELOW_BYTES, InsufficientStorage

if TYPE_CHECKING:
    from alembic.config import Config

from berkas.core.ports import (
    AuditLog,
    ClientRepository,
    FileRepository,
    NodeLeaseRepository,
    ReplayRepository,
    TaskLeaseRepository,
    WriteLockWaits,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary constant naming berkas's PostgreSQL advisory lock: nodes starting together
# migrate one after another instead of racing to create the same tables.
_MIGRATION_LOCK_ID = 0x62657262  # "berb"


class SqlDatabase:
    """The metadata store over one SQLAlchemy engine (implements ``core.ports.Database``).

    ``sealer`` holds the master key that seals and opens the secrets stored here; without
    it only the schema and the secret-free tables can be used.
    """

    def __init__(self, engine: Engine, sealer: Sealer | None = None) -> None:
        self.engine = engine
        # SQLite has one writer and an fsync per commit: concurrent writes are batched
        # into one transaction (writes.py). PostgreSQL runs concurrent writers itself.
        self._writes: Writes = (
            GroupCommit(engine) if engine.dialect.name == "sqlite" else DirectWrites(engine)
        )
        writes = self._writes
        # Annotated with the Protocols: Database's attributes are mutable, hence invariant.
        self.clients: ClientRepository = SqlClientRepository(engine, sealer, writes)
        self.files: FileRepository = SqlFileRepository(engine, writes)
        self.replays: ReplayRepository = SqlReplayRepository(engine, sealer, writes)
        self.leases: NodeLeaseRepository = SqlNodeLeaseRepository(engine, writes)
        self.events: AuditLog = SqlAuditLog(engine, writes)
        self.tasks: TaskLeaseRepository = SqlTaskLeases(engine, writes)
        self.signing_keys = SqlKeyStore(engine, sealer, writes)
        self.service_secrets = SqlServiceSecrets(engine, sealer, writes)
        self.sealed = SqlSealedValues(engine, sealer, writes)

    @classmethod
    def from_url(cls, url: str, *, sealer: Sealer | None = None) -> SqlDatabase:
        """Open (lazily: nothing connects yet) the database at ``url``.

        Accepts ``sqlite:////absolute/path.db`` and ``postgresql://…``. Raises
        ``ValueError`` for other URLs and ``RuntimeError`` when psycopg is missing.
        """
        return cls(build_engine(url), sealer)

    def compact(self) -> None:
        """On SQLite, rewrite the file so no freed page keeps an old value (VACUUM) and
        empty the write-ahead log; a no-op elsewhere (``engine.compact``)."""
        compact(self.engine)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def check(self) -> None:
        """Run ``SELECT 1``; raise ``Unavailable`` if the database cannot be reached, and
        ``InsufficientStorage`` while an SQLite file's disk is full (reads still work
        then, so ``SELECT 1`` alone would call it ready)."""
        with translate_errors(), self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = self.engine.url.database
        if self.dialect == "sqlite" and database:
            try:
                stats = os.statvfs(Path(database).parent)
            except OSError as exc:
                raise unavailable(exc) from exc
            if stats.f_bavail * stats.f_frsize < FULL_BELOW_BYTES:
                raise InsufficientStorage(
                    "the metadata database's disk is full; try again later.",
                    code=Code.INSUFFICIENT_STORAGE,
                )

    def write_lock_waits(self) -> WriteLockWaits | None:
        """On SQLite, how long this process's write transactions waited for the file's
        write lock; None on PostgreSQL (no single writer)."""
        waits = lock_waits(self.engine)
        return waits.snapshot() if waits is not None else None

    def close(self) -> None:
        """Commit what is queued, then close every pooled connection."""
        self._writes.close()
        self.engine.dispose()

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision``; a no-op when it is already there.

        All revisions run in one transaction (SQLite and PostgreSQL both have transactional
        DDL), so a failure leaves the schema as it was. A database already at the head is
        recognised with one query, without loading alembic.
        """
        if revision == "head" and self.current_revision() == HEAD:
            return
        from alembic import command  # noqa: PLC0415 - only when there is work to do

        config = self._alembic_config()
        with translate_errors():
            writer = self.engine.execution_options(**{WRITE_OPTION: True})
            with writer.begin() as connection:
                if self.dialect == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        """The revision the database is at; None before the first migration.

        Read as alembic keeps it (one row in ``alembic_version``; berkas's history is
        linear), without loading alembic.
        """
        with translate_errors(), self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            version = connection.execute(text("SELECT version_num FROM alembic_version"))
            return version.scalar_one_or_none()

    def head_revision(self) -> str:
        """The newest revision this version of berkas ships."""
        return HEAD

    def is_up_to_date(self) -> bool:
        """True when the schema is at the newest revision (``berkas db migrate`` not needed)."""
        return self.current_revision() == self.head_revision()

    @staticmethod
    def _alembic_config() -> Config:
        from alembic.config import Config  # noqa: PLC0415 - loaded only to migrate

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        return config
