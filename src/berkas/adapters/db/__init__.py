"""Metadata stores: SQLite/PostgreSQL through SQLAlchemy Core, and an in-memory twin."""
