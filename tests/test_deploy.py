"""The operator files in deploy/: the systemd unit passes ``systemd-analyze verify`` and
the example configuration is one berkas accepts, with the values it says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from berkas.config import load_settings

DEPLOY = Path(__file__).parent.parent / "deploy"


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI") == "true":
            pytest.fail("systemd-analyze is missing; `make system-deps` installs systemd")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    unit = (DEPLOY / "berkas.service").read_text()
    # verify also checks that ExecStart's program exists: point it at this checkout's.
    berkas = Path(sys.executable).parent / "berkas"
    assert "ExecStart=/opt/berkas/bin/berkas serve" in unit
    (tmp_path / "berkas.service").write_text(unit.replace("/opt/berkas/bin/berkas", str(berkas)))
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "berkas.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Any complaint about the unit (unknown key, bad value) is printed; none may be.
    complaints = [line for line in result.stderr.splitlines() if "berkas.service" in line]
    assert not complaints, result.stderr
    assert result.returncode == 0, result.stderr


def test_the_example_configuration_is_accepted(tmp_path: Path) -> None:
    environment = {"BERKAS_CONFIG_FILE": str(DEPLOY / "berkas.conf.example")}
    with mock.patch.dict(os.environ, environment, clear=True):
        settings = load_settings(data_dir=tmp_path / "d")
    assert settings.base_url == "https://berkas.example.com"
    assert settings.env == "production"
    assert settings.fetch_enabled is False
    assert settings.demo_client is False
