"""Add signing_keys and service_secrets: keys and the link secret move into the database.

Both hold values sealed under the master key (adapters/sealing.py). Importing the key
directory and link-secret file of an older data dir, and sealing plaintext client
secrets, needs the master key, so ``berkas.wiring.prepare`` does it after migrating.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create signing_keys and service_secrets."""
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_current", sa.Boolean(), nullable=True),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_keys"),
        sa.UniqueConstraint("is_current", name="uq_signing_keys_is_current"),
    )
    op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_service_secrets"),
    )


def downgrade() -> None:
    """Drop both tables (the keys and secrets in them are lost)."""
    op.drop_table("service_secrets")
    op.drop_table("signing_keys")
