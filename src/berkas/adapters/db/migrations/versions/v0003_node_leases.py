"""Add node_leases: which live node holds which node number.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create node_leases."""
    op.create_table(
        "node_leases",
        sa.Column("node_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name="pk_node_leases"),
    )


def downgrade() -> None:
    """Drop node_leases."""
    op.drop_table("node_leases")
