"""Document lifecycle: retention, legal hold, link revocation, data keys, the audit trail.

``files`` gains ``retained_until``, ``legal_hold``, ``link_generation``, ``data_key`` and
``metadata_removed`` (existing rows: kept until deleted, no hold, generation 0 so their
links keep working, stored in the clear, nothing stripped) and an index for duplicate
lookups. ``file_events`` is the append-only audit trail; ``task_leases`` lets one node at
a time run a cluster-wide chore.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the columns, indexes and the two tables."""
    moment = sa.DateTime(timezone=True)
    op.add_column("files", sa.Column("retained_until", moment, nullable=True))
    op.add_column(
        "files", sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "files", sa.Column("link_generation", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("files", sa.Column("data_key", sa.Text(), nullable=True))
    op.add_column("files", sa.Column("metadata_removed", sa.String(255), nullable=True))
    op.create_index(
        "ix_files_client_id_category_sha256", "files", ["client_id", "category", "sha256"]
    )
    op.create_index("ix_files_retained_until", "files", ["retained_until"])
    op.create_table(
        "file_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("file_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", moment, nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_file_events"),
    )
    op.create_index("ix_file_events_file_id", "file_events", ["file_id"])
    op.create_index("ix_file_events_client_id_at", "file_events", ["client_id", "at"])
    op.create_index("ix_file_events_at", "file_events", ["at"])
    op.create_table(
        "task_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", moment, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_task_leases"),
    )


def downgrade() -> None:
    """Drop them again (the audit trail and lifecycle settings are lost)."""
    op.drop_table("task_leases")
    op.drop_index("ix_file_events_at", "file_events")
    op.drop_index("ix_file_events_client_id_at", "file_events")
    op.drop_index("ix_file_events_file_id", "file_events")
    op.drop_table("file_events")
    op.drop_index("ix_files_retained_until", "files")
    op.drop_index("ix_files_client_id_category_sha256", "files")
    for name in ("metadata_removed", "data_key", "link_generation", "legal_hold", "retained_until"):
        op.drop_column("files", name)
