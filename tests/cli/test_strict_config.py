"""A misspelt ``BERKAS_*`` name stops the real ``berkas serve`` before it touches anything.

A fleet node that started with ``BERKAS_LINK_SECERT`` would mint its own link secret and
hand out links no other node accepts; it must refuse to start instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fixture_server import free_port

SECRET = "s" * 40


def berkas(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real CLI with ``env`` as its only BERKAS_* variables."""
    # A BERKAS_* name in the developer's shell must not decide the test.
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("BERKAS_")}
    return subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        # Were the name accepted, serve would run until killed: fail, do not hang.
        timeout=30,
        check=False,
    )


def serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return berkas("serve", "--port", str(free_port()), env=env)


def assert_refused_naming_link_secret(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "BERKAS_LINK_SECRET" in done.stderr
    [line] = done.stderr.strip().splitlines()  # one line for the one unknown name
    assert line.startswith("Error: invalid configuration: BERKAS_LINK_SECERT")
    assert "listening on" not in done.stdout


def test_a_misspelt_variable_stops_serve_before_the_data_dir_exists(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    done = serve({"BERKAS_DATA_DIR": str(data_dir), "BERKAS_LINK_SECERT": SECRET})

    assert_refused_naming_link_secret(done)
    assert done.stderr.strip() == (
        "Error: invalid configuration: BERKAS_LINK_SECERT: unknown; "
        "did you mean BERKAS_LINK_SECRET?"
    )
    assert not data_dir.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["environment", "config file"])
def test_an_existing_data_dir_is_left_untouched(tmp_path: Path, where: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)  # serve would make it 0700 and fill it
    before = data_dir.stat()
    env = {"BERKAS_DATA_DIR": str(data_dir)}
    if where == "environment":
        env["BERKAS_LINK_SECERT"] = SECRET
    else:
        config = tmp_path / "berkas.env"
        config.write_text(f"BERKAS_NODE_ID=3\nBERKAS_LINK_SECERT={SECRET}\n")
        env["BERKAS_CONFIG_FILE"] = str(config)

    done = serve(env)

    assert_refused_naming_link_secret(done)
    assert list(data_dir.iterdir()) == []
    after = data_dir.stat()
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)


def test_every_unknown_name_gets_its_own_line_for_admin_verbs_too(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    done = berkas(
        "clients",
        "list",
        env={
            "BERKAS_DATA_DIR": str(data_dir),
            "BERKAS_LINK_SECERT": SECRET,
            "berkas_prot": "9000",
        },
    )

    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        "Error: invalid configuration:",
        "  BERKAS_LINK_SECERT: unknown; did you mean BERKAS_LINK_SECRET?",
        "  berkas_prot: unknown; did you mean BERKAS_PORT?",
    ]
    assert not data_dir.exists()
