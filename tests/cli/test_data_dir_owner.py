"""Root in a data dir another user owns (the systemd unit's dynamic user's): every verb
refuses, naming the owner and berkas-admin, and leaves the data dir as it was, so no
root-owned file can stop the service at its next start (README "Running admin commands
for the service")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fixture_server import free_port

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can write into another user's data dir"
)

# The service's user in the test: any uid but root's (nobody's, as it happens).
SERVICE_UID = 65534


def berkas(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BERKAS_")}
    return subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", *args],
        env={**clean, "BERKAS_DATA_DIR": str(data_dir), "BERKAS_DEMO_CLIENT": "false"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root``: its owner, mode and modification time."""
    found = {}
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        found[str(path.relative_to(root))] = (info.st_uid, info.st_mode, info.st_mtime_ns)
    return found


@pytest.fixture
def service_data_dir(tmp_path: Path) -> Path:
    """A data dir the service made (migrated, keys and all), then owned by its user."""
    data_dir = tmp_path / "data"
    made = berkas("db", "migrate", data_dir=data_dir)
    assert made.returncode == 0, made.stderr
    for path in [data_dir, *data_dir.rglob("*")]:
        os.chown(path, SERVICE_UID, SERVICE_UID, follow_symlinks=False)
    return data_dir


@pytest.mark.parametrize(
    "args",
    [
        ("clients", "list"),
        ("clients", "create", "--json"),
        ("keys", "rotate"),
        ("secrets", "status"),
        ("db", "migrate"),
        ("storage", "init"),
        ("files", "hold", "DCM-0001-0000000000000"),
    ],
    ids=" ".join,
)
def test_root_is_refused_and_writes_nothing(service_data_dir: Path, args: tuple[str, ...]) -> None:
    before = snapshot(service_data_dir)

    completed = berkas(*args, data_dir=service_data_dir)

    assert completed.returncode == 1, completed.stderr
    assert completed.stdout == ""
    assert completed.stderr.strip().splitlines() == [
        f"Error: the data dir {service_data_dir} belongs to uid {SERVICE_UID} and this command "
        "runs as root, so the files it wrote there would be root's and the service could not "
        "open them; run it as the data dir's user (for the systemd unit: berkas-admin "
        'COMMAND, README "Running admin commands for the service")'
    ]
    assert snapshot(service_data_dir) == before


def test_serve_as_root_is_refused_before_its_lock_file(service_data_dir: Path) -> None:
    before = snapshot(service_data_dir)

    completed = berkas("serve", "--port", str(free_port()), data_dir=service_data_dir)

    assert completed.returncode == 1, completed.stderr
    assert f"belongs to uid {SERVICE_UID}" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert snapshot(service_data_dir) == before  # no root-owned serve.pid


def test_root_in_its_own_data_dir_is_not_refused(tmp_path: Path) -> None:
    made = berkas("clients", "create", "--json", data_dir=tmp_path / "data")

    assert made.returncode == 0, made.stderr
