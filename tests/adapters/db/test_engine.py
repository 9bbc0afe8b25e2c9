"""Which database URLs berkas accepts, and how it refuses the rest."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from berkas import install_hint
from berkas.adapters.db.engine import display_url, normalise_url, sqlite_file


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:////var/lib/berkas/berkas.db", "sqlite+pysqlite"),
        ("postgresql://berkas:secret@db:5432/berkas", "postgresql+psycopg"),
        ("postgres://berkas@db/berkas", "postgresql+psycopg"),
        ("postgresql+psycopg://berkas@db/berkas", "postgresql+psycopg"),
    ],
)
def test_supported_urls_pick_berkas_drivers(url: str, driver: str) -> None:
    assert normalise_url(url).drivername == driver


@pytest.mark.parametrize(
    "url",
    ["sqlite:///relative/berkas.db", "sqlite://", "sqlite:///:memory:"],
)
def test_sqlite_needs_an_absolute_file_path(url: str) -> None:
    with pytest.raises(ValueError, match=r"absolute SQLite file path; expected sqlite:////"):
        normalise_url(url)


@pytest.mark.parametrize(
    "url",
    ["mysql://root@db/berkas", "postgresql+psycopg2://db/berkas", "not a url"],
)
def test_other_databases_are_refused_with_the_accepted_forms(url: str) -> None:
    with pytest.raises(ValueError, match=r"postgresql://"):
        normalise_url(url)


def test_missing_psycopg_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is how Python marks a module as not importable.
    monkeypatch.setitem(sys.modules, "psycopg", None)

    with pytest.raises(RuntimeError, match=re.escape(install_hint("postgres"))):
        normalise_url("postgresql://berkas@db/berkas")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://berkas:hunter2@db:5432/berkas", "postgresql://berkas:***@db:5432/berkas"),
        ("postgresql://berkas:p%40ss@db/berkas", "postgresql://berkas:***@db/berkas"),
        ("postgresql://berkas@db/berkas", "postgresql://berkas@db/berkas"),
        ("sqlite:////var/lib/berkas/berkas.db", "sqlite:////var/lib/berkas/berkas.db"),
    ],
)
def test_a_printed_database_url_never_shows_the_password(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_sqlite_file_names_the_file_a_connect_would_create() -> None:
    assert sqlite_file("sqlite:////var/lib/berkas/berkas.db") == Path("/var/lib/berkas/berkas.db")
    assert sqlite_file("postgresql://berkas@db/berkas") is None
    with pytest.raises(ValueError, match="not supported"):
        sqlite_file("mysql://db/berkas")
