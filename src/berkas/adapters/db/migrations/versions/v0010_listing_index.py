"""The file list's indexes: (client_id, created_at, id) replaces (client_id, created_at),
and (created_at, id) for the operator's list of every client's files.

``GET /files`` pages one partner's files newest first in (created_at, id) order, id
breaking ties between files of the same microsecond (docs/design.md 3.5). With the id in
the index a page, cursor included, is one index range in the list's own order on SQLite
and PostgreSQL; without it, files sharing a created_at were sorted after reading. The
two-column index is dropped: the three-column one serves every query it served.
``berkas files list`` without ``--client`` pages every file the same way, over
(created_at, id): without that index each page scanned and sorted the whole table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Swap the index, add the operator's."""
    op.create_index("ix_files_listing", "files", ["client_id", "created_at", "id"])
    op.create_index("ix_files_newest", "files", ["created_at", "id"])
    op.drop_index("ix_files_client_id_created_at", "files")


def downgrade() -> None:
    """Back to the two-column index."""
    op.create_index("ix_files_client_id_created_at", "files", ["client_id", "created_at"])
    op.drop_index("ix_files_newest", "files")
    op.drop_index("ix_files_listing", "files")
