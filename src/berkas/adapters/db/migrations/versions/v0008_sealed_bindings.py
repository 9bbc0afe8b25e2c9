"""What a leaked database must not give away: token generations, data-key bindings, the list
of clear client secrets an older release left, master-key ages; replay answers forgotten.

- ``clients.token_generation`` (0): bumped by a disable and a rotation; tokens minted
  before either stop working.
- ``files.data_key_binding`` (NULL for existing rows): the next start reseals each existing
  data key bound to the file's id, owner, object key and link generation (it needs the
  master key, which a migration does not have) and sets it to 2.
- ``legacy_clear_secrets``: the client ids whose secret is in clear right now. Only an
  older release (before 0004's sealing) wrote those; ``berkas secrets seal-legacy`` seals
  exactly these rows, once. A clear value in any other row is refused, never sealed.
- ``master_keys``: when each master key first sealed here (``berkas secrets status``).
- Answered replay records are deleted: their bodies were stored in clear (a live bearer
  token for ``POST /token``), and from this revision on every body is sealed. A retry of
  a request sent before the upgrade runs again instead of hearing the first answer.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the columns and tables, list the clear secrets, forget answered replays."""
    moment = sa.DateTime(timezone=True)
    op.add_column(
        "clients",
        sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("files", sa.Column("data_key_binding", sa.Integer(), nullable=True))
    legacy = op.create_table(
        "legacy_clear_secrets",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("found_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_legacy_clear_secrets"),
    )
    op.create_table(
        "master_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("first_used_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_master_keys"),
    )
    connection = op.get_bind()
    clients = sa.table("clients", sa.column("client_id"), sa.column("secret_key"))
    clear = connection.execute(
        sa.select(clients.c.client_id).where(clients.c.secret_key.not_like("sealed:%"))
    ).scalars()
    # Naive UTC on SQLite, as tables.UtcDateTime stores it.
    now = datetime.now(UTC)
    found = now.replace(tzinfo=None) if connection.dialect.name == "sqlite" else now
    rows = [{"client_id": client_id, "found_at": found} for client_id in clear]
    if rows:
        op.bulk_insert(legacy, rows)
    replays = sa.table("replays", sa.column("body"))
    connection.execute(sa.delete(replays).where(replays.c.body.is_not(None)))


def downgrade() -> None:
    """Drop what upgrade added (forgotten replay answers stay forgotten)."""
    op.drop_table("master_keys")
    op.drop_table("legacy_clear_secrets")
    # ALTER TABLE DROP COLUMN (SQLite 3.35+), not batch mode: rebuilding clients would
    # drop the table the files rows' foreign key points at (as 0005 explains).
    op.drop_column("files", "data_key_binding")
    op.drop_column("clients", "token_generation")
