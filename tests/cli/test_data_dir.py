"""Which data dir an admin verb acts on, and that read-only verbs never make one.

The empty-folder cases run the real ``berkas`` process in a working directory of the
test's choosing, so the default ``./berkas-data`` is resolved exactly as an operator's
shell would; the rest run the same commands through click, in-process, for speed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from berkas.adapters.db.database import SqlDatabase
from berkas.cli.main import main

READ_ONLY = [
    ("clients", "list"),
    ("clients", "list", "--json"),
    ("keys", "list"),
    ("keys", "list", "--json"),
]


def berkas(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI with ``env`` as its only BERKAS_* variables, run in ``cwd``."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BERKAS_")}
    return subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in-process with ``env`` as its only BERKAS_* variables."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.upper().startswith("BERKAS_")}
    return CliRunner().invoke(main, list(args), env={**unset, **(env or {})})


def where(data_dir: Path) -> str:
    return f"data dir: {data_dir}  database: sqlite:///{data_dir}/berkas.db"


@pytest.mark.parametrize("verb", READ_ONLY)
def test_a_read_only_verb_in_an_empty_folder_names_the_absolute_path_and_creates_nothing(
    tmp_path: Path, verb: tuple[str, ...]
) -> None:
    done = berkas(*verb, cwd=tmp_path)  # no BERKAS_DATA_DIR: the default ./berkas-data

    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr == (
        f"Error: no berkas data dir at {tmp_path.resolve() / 'berkas-data'}; "
        "start the server there with berkas serve, or pass --data-dir\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb", READ_ONLY)
def test_a_read_only_verb_on_a_data_dir_without_a_database_creates_none(
    tmp_path: Path, verb: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    done = invoke(*verb, "--data-dir", str(data_dir))

    assert done.exit_code != 0
    assert done.stderr.splitlines() == [
        f"Error: no berkas database at {data_dir}/berkas.db; start the server with "
        "berkas serve, or run berkas db migrate"
    ]
    assert list(data_dir.iterdir()) == []  # SQLite would have made the file on connect


def test_a_schema_behind_points_at_db_migrate_and_is_not_migrated(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert invoke("db", "migrate", "--data-dir", str(data_dir)).exit_code == 0
    # The database of an older berkas: only the first revision applied.
    for name in ("berkas.db", "berkas.db-wal", "berkas.db-shm"):
        (data_dir / name).unlink(missing_ok=True)
    old = SqlDatabase.from_url(f"sqlite:///{data_dir}/berkas.db")
    try:
        old.migrate("0001")
    finally:
        old.close()

    done = invoke("clients", "list", "--data-dir", str(data_dir))

    assert done.exit_code != 0
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: the database schema is at revision 0001, this berkas needs ")
    assert line.endswith("; run berkas db migrate")
    with closing(sqlite3.connect(data_dir / "berkas.db")) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]

    assert invoke("db", "migrate", "--data-dir", str(data_dir)).exit_code == 0
    listed = invoke("clients", "list", "--json", "--data-dir", str(data_dir))
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_the_data_dir_flag_beats_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    from_env = tmp_path / "from-env"
    env = {"BERKAS_DATA_DIR": str(from_env)}

    # A relative flag is resolved against the working directory, once.
    created = invoke("clients", "create", "--json", "--data-dir", "flagged", env=env)

    flagged = tmp_path.resolve() / "flagged"
    assert created.exit_code == 0, created.stderr
    assert created.stderr.splitlines() == [
        f"created a new berkas data dir at {flagged}",
        where(flagged),
    ]
    assert (flagged / "berkas.db").is_file()
    assert not from_env.exists()
    client_id = json.loads(created.stdout)["client_id"]

    listed = invoke("clients", "list", "--data-dir", str(flagged), env=env)
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.splitlines()[1].startswith(f"{client_id}  ")
    assert listed.stderr.splitlines() == [where(flagged)]

    without_flag = invoke("clients", "list", env=env)
    assert without_flag.exit_code != 0
    assert f"no berkas data dir at {from_env}" in without_flag.stderr
    assert not from_env.exists()


@pytest.mark.parametrize(
    "verb",
    [
        ("clients", "create", "--json"),
        ("clients", "list", "--json"),
        ("clients", "disable", "BRN-0001-1"),
        ("clients", "enable", "BRN-0001-1"),
        ("clients", "label", "BRN-0001-1", "Toko Maju"),
        ("clients", "rotate-secret", "BRN-0001-1"),
        ("clients", "rotate-secret", "BRN-0001-1", "--json"),
        ("keys", "rotate"),
        ("keys", "list"),
        ("keys", "list", "--json"),
        ("db", "migrate"),
    ],
)
def test_every_admin_verb_names_the_data_dir_and_database_on_stderr(
    tmp_path: Path, verb: tuple[str, ...]
) -> None:
    data_dir = tmp_path / "data"
    env = {"BERKAS_DATA_DIR": str(data_dir)}
    setup = invoke("clients", "create", "--client-id", "BRN-0001-1", env=env)
    assert setup.exit_code == 0, setup.stderr

    done = invoke(*verb, env=env)

    assert done.exit_code == 0, done.stderr
    # Only the one line, and only on stderr: an existing dir is not announced as new,
    # and stdout stays what scripts parse.
    assert done.stderr.splitlines() == [where(data_dir)]
    assert "data dir" not in done.stdout
    if "--json" in verb:
        json.loads(done.stdout)
