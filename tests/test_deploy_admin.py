"""``deploy/berkas-admin`` runs an admin command as deploy/berkas.service runs berkas: no
systemd runs here, so a stand-in ``systemd-run`` records what the wrapper asks for, and
each setting is checked against the unit itself (user, state directory, credentials,
environment, program)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.test_deploy import DEPLOY, UNIT, _credentials, _service_entries, _unit_environment

WRAPPER = DEPLOY / "berkas-admin"

# Writes its arguments, as JSON, where RECORD_TO says.
FAKE_SYSTEMD_RUN = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["RECORD_TO"], "w") as out:
    json.dump(sys.argv[1:], out)
"""


def run_wrapper(tmp_path: Path, *args: str) -> list[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemd-run"
    fake.write_text(FAKE_SYSTEMD_RUN)
    fake.chmod(0o755)
    record = tmp_path / "argv.json"
    completed = subprocess.run(
        [str(WRAPPER), *args],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD_TO": str(record)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    argv: list[str] = json.loads(record.read_text())
    return argv


def split(
    argv: list[str],
) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, str], list[str]]:
    """systemd-run's options, its --property= pairs, its --setenv= pairs, the command."""
    options: dict[str, str] = {}
    properties: list[tuple[str, str]] = []
    setenv: dict[str, str] = {}
    rest = list(argv)
    while rest and rest[0].startswith("--"):
        word = rest.pop(0)
        name, _, value = word.partition("=")
        if name == "--property":
            key, _, setting = value.partition("=")
            properties.append((key, setting))
        elif name == "--setenv":
            key, _, setting = value.partition("=")
            setenv[key] = setting
        else:
            options[name] = value
    return options, properties, setenv, rest


def test_the_wrapper_runs_the_command_as_the_unit_runs_berkas(tmp_path: Path) -> None:
    options, properties, setenv, command = split(
        run_wrapper(tmp_path, "clients", "create", "--label", "Toko Maju")
    )
    unit = _service_entries(UNIT.read_text())
    settings = dict(unit)

    # The transient unit's name is its own, per run; its credentials directory follows it.
    name = options["--unit"]
    assert name.startswith("berkas-admin-")
    credentials = f"/run/credentials/{name}.service"
    # Waits for the command and hands it the terminal's stdin/stdout/stderr.
    assert {"--pipe", "--wait", "--collect"} <= options.keys()
    given = dict(properties)
    # The same dynamic user: the unit sets no User=, so its user is named after the unit.
    assert settings["DynamicUser"] == given["DynamicUser"] == "yes"
    assert "User" not in settings
    assert given["User"] == UNIT.name.removesuffix(".service")
    for key in ("StateDirectory", "StateDirectoryMode", "UMask"):
        assert given[key] == settings[key], key
    # The same credentials, from the same root-only files.
    assert _credentials(properties) == _credentials(unit)
    # The same environment, %d (the unit's credentials directory) being this run's.
    expected = {
        key: value.replace("%d", credentials) for key, value in _unit_environment(unit).items()
    }
    assert setenv == expected
    # The unit's program, with the admin command's arguments as given.
    program = settings["ExecStart"].split()[0]
    assert command == [program, "clients", "create", "--label", "Toko Maju"]


def test_the_wrapper_is_installed_as_the_unit_header_says() -> None:
    # deploy/berkas-admin is executable, and the unit's instructions point at it.
    assert os.access(WRAPPER, os.X_OK)
    assert "berkas-admin" in UNIT.read_text().split("[Unit]", 1)[0]
