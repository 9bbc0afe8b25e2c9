"""Add pending_blobs: the intent log that lets a restart remove orphan blobs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create pending_blobs."""
    op.create_table(
        "pending_blobs",
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_pending_blobs"),
    )
    op.create_index("ix_pending_blobs_node_id", "pending_blobs", ["node_id"])


def downgrade() -> None:
    """Drop pending_blobs."""
    op.drop_index("ix_pending_blobs_node_id", table_name="pending_blobs")
    op.drop_table("pending_blobs")
