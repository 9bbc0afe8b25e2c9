"""Add client labels and secret rotation to clients.

``label`` is the operator's name for a partner. ``secret_rotated_at``,
``previous_secret_key`` and ``previous_expires_at`` keep the secret a rotation replaced
(sealed under the master key like the current one) verifying until its grace ends. All
nullable: existing clients have no label and were never rotated.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_COLUMNS = ("label", "secret_rotated_at", "previous_secret_key", "previous_expires_at")


def upgrade() -> None:
    """Add the four nullable columns (ALTER TABLE ADD COLUMN on both backends)."""
    moment = sa.DateTime(timezone=True)
    op.add_column("clients", sa.Column("label", sa.String(255), nullable=True))
    op.add_column("clients", sa.Column("secret_rotated_at", moment, nullable=True))
    op.add_column("clients", sa.Column("previous_secret_key", sa.String(512), nullable=True))
    op.add_column("clients", sa.Column("previous_expires_at", moment, nullable=True))


def downgrade() -> None:
    """Drop them (labels and previous secrets are lost; current secrets stay)."""
    # ALTER TABLE DROP COLUMN on both (SQLite has it since 3.35): batch mode would rebuild
    # clients, and dropping the old table breaks the files rows' foreign key.
    for name in reversed(_COLUMNS):
        op.drop_column("clients", name)
