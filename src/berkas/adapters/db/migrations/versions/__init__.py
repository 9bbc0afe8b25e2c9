"""Alembic revisions, oldest first; each is a frozen snapshot, never edited once released."""
