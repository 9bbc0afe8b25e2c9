"""Alembic migrations of the metadata schema, run by ``SqlDatabase.migrate()``."""

# The newest revision in versions/. A node whose database is already there starts without
# importing alembic at all (about 11 MB of resident memory, for the life of the process);
# tests/adapters/db/test_database.py checks this against alembic's own idea of the head.
HEAD = "0010"
