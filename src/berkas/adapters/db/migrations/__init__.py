"""Alembic migrations of the metadata schema, run by ``SqlDatabase.migrate()``."""
