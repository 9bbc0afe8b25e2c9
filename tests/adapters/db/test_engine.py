"""Which database URLs berkas accepts, and how it refuses the rest."""

from __future__ import annotations

import sys

import pytest

from berkas.adapters.db.engine import normalise_url


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

    with pytest.raises(RuntimeError, match=r"pip install 'berkas\[postgres\]'"):
        normalise_url("postgresql://berkas@db/berkas")
