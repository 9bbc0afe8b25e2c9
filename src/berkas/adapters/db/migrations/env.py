"""Alembic environment: runs revisions on the connection ``SqlDatabase.migrate()`` passes.

Run by alembic, never imported by berkas itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from berkas.adapters.db.tables import metadata


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    # The caller already began the transaction (and took the migration lock), so the
    # revisions and the alembic_version stamp commit together.
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "berkas migrations run through SqlDatabase.migrate() (berkas db migrate), "
            "which supplies the connection; offline (--sql) mode is not supported"
        )
    _run_on(connection)


_main()
