"""Who did it: each audit event carries the request id of its access-log line and, for the
operator's events, the actor; each file says whether the metadata policy ran on it.

- ``file_events.request_id``, ``file_events.actor`` (NULL for events written before).
- ``files.metadata_checked``: TRUE when the stripping policy was applied at upload (or by
  ``berkas files upgrade --strip``); FALSE for rows stored before 0006's stripping, which
  ``berkas secrets status`` counts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the columns; rows stored before are marked unchecked."""
    op.add_column("file_events", sa.Column("request_id", sa.String(128), nullable=True))
    op.add_column("file_events", sa.Column("actor", sa.String(255), nullable=True))
    op.add_column(
        "files",
        sa.Column("metadata_checked", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    # Rows that say what stripping removed were certainly checked.
    files = sa.table("files", sa.column("metadata_removed"), sa.column("metadata_checked"))
    op.get_bind().execute(
        sa.update(files).where(files.c.metadata_removed.is_not(None)).values(metadata_checked=True)
    )


def downgrade() -> None:
    """Drop the columns (ALTER TABLE DROP COLUMN, as 0005 explains)."""
    op.drop_column("files", "metadata_checked")
    op.drop_column("file_events", "actor")
    op.drop_column("file_events", "request_id")
