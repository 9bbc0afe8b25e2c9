"""The operator files in deploy/: the systemd unit passes ``systemd-analyze verify`` and
the example configuration is one berkas accepts, with the values it says."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tomllib
from pathlib import Path
from unittest import mock

import pytest

from berkas import __version__
from berkas.adapters.sealing import (
    SealingError,
    new_master_key_text,
    parse_master_key,
    read_key_file,
)
from berkas.config import Settings, load_settings
from berkas.wiring import prepare, secrets_status
from berkas.wiring.secrets import sealer as _sealer

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


# --- The unit's permissions model (issue 19): the config and the master key reach the
# service's dynamic user, and only it, as systemd credentials. ---------------------------

UNIT = DEPLOY / "berkas.service"
# Where the operator keeps the originals (0600 root:root) and the names the unit loads
# them under: %d/<name> in the service, %d being its credentials directory.
SECRET_FILES = {"berkas.conf": "/etc/berkas/berkas.conf", "master-key": "/etc/berkas/master-key"}
# The variables berkas reads the two files from, and which credential each must name.
POINTED_AT = {"BERKAS_CONFIG_FILE": "berkas.conf", "BERKAS_MASTER_KEY_FILE": "master-key"}
# Modes that would give a secret file to another account on the host.
LOOSE_MODES = ("0640", "0644", "0664", "0666", "0604", "0440", "0444", "0755", "0750")


def _service_entries(text: str) -> list[tuple[str, str]]:
    """The ``key=value`` lines of the unit's [Service] section, in order (comments skipped)."""
    entries: list[tuple[str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section == "Service":
            key, _, value = line.partition("=")
            entries.append((key.strip(), value.strip()))
    return entries


def _unit_environment(entries: list[tuple[str, str]]) -> dict[str, str]:
    # Environment= takes one or more (optionally quoted) NAME=value words.
    environment: dict[str, str] = {}
    for key, value in entries:
        if key == "Environment":
            for word in shlex.split(value):
                name, _, setting = word.partition("=")
                environment[name] = setting
    return environment


def _credentials(entries: list[tuple[str, str]]) -> dict[str, str]:
    loaded: dict[str, str] = {}
    for key, value in entries:
        if key == "LoadCredential":
            name, _, path = value.partition(":")
            assert name not in loaded, f"credential {name} loaded twice"
            loaded[name] = path
    return loaded


def _header(text: str) -> str:
    """The operator instructions: the comment block before [Unit]."""
    return text.split("[Unit]", 1)[0]


def _secret_variables() -> set[str]:
    # Every setting whose value is a secret: the SecretStr fields, the link secret, a
    # database URL (it carries the password), and what the S3 client would read.
    sealed = {
        "BERKAS_" + name.upper()
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert {"BERKAS_MASTER_KEY", "BERKAS_MASTER_KEY_PREVIOUS"} <= sealed
    return sealed | {
        "BERKAS_LINK_SECRET",
        "BERKAS_DATABASE_URL",
        "BERKAS_CLIENT_SECRET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    }


def test_the_unit_hands_its_secrets_to_the_service_user_as_credentials() -> None:
    entries = _service_entries(UNIT.read_text())
    settings = dict(entries)
    # The service runs as a user of its own that no file on the host can name...
    assert settings.get("DynamicUser") == "yes"
    assert "User" not in settings
    assert "Group" not in settings
    # ...so every secret-bearing file reaches it as a credential: systemd (root) reads the
    # 0600 original and gives the unit a private copy readable by that user alone.
    loaded = _credentials(entries)
    assert {name: loaded.get(name) for name in SECRET_FILES} == SECRET_FILES
    environment = _unit_environment(entries)
    for variable, credential in POINTED_AT.items():
        assert environment.get(variable) == f"%d/{credential}", variable
    # No file variable points past the credentials directory at something the dynamic
    # user would need loosened permissions to read.
    for name, value in environment.items():
        if name.endswith("_FILE"):
            assert value.startswith("%d/"), (name, value)
            assert value.removeprefix("%d/") in loaded, (name, value)
    # Never the secrets themselves in the unit (unit files are world-readable, and
    # `systemctl show` prints Environment= to any user), nor an EnvironmentFile.
    inline = sorted(set(environment) & _secret_variables())
    assert not inline, f"secrets set inline in the unit: {inline}"
    assert "EnvironmentFile" not in settings
    assert "PassEnvironment" not in settings
    # The master key is kept apart from the data dir: a backup of the data dir must not
    # carry the key that opens it.
    data_dir = environment["BERKAS_DATA_DIR"]
    assert data_dir == "/var/lib/" + settings["StateDirectory"]
    for path in loaded.values():
        assert not path.startswith((data_dir, "/var/lib/")), path


def test_the_instructions_keep_the_secret_files_private() -> None:
    header = _header(UNIT.read_text())
    example_head = _header_of_example()
    for text in (header, example_head):
        loose = [mode for mode in LOOSE_MODES if mode in text]
        assert not loose, f"instructions mention a mode others can read: {loose}"
        assert "chmod" not in text
        assert not re.search(r"\b[ugoa]*\+r", text)
    # Both files are created 0600 root:root by the commands the operator copies.
    for path in SECRET_FILES.values():
        made = [
            line
            for line in header.splitlines()
            if "install " in line and line.rstrip().endswith(path)
        ]
        assert made, f"no install command for {path}"
        for line in made:
            assert "-m 0600 -o root -g root" in line, line
    assert "/etc/berkas/berkas.conf, 0600 root:root" in example_head
    # The master key is made fresh only when none exists: a new key cannot open what an
    # older one sealed.
    assert "[ -e /etc/berkas/master-key ] ||" in header
    # berkas is on no package index: the install steps name the wheel `make dist` builds
    # (this version's) and a checkout, each with extras that exist.
    installs = re.findall(r"/opt/berkas/bin/pip install '([^']+)\[([\w,]+)\]'", header)
    targets = [target for target, _ in installs]
    assert f"./berkas-{__version__}-py3-none-any.whl" in targets
    assert any(target.startswith("/") for target in targets)
    for _, extras in installs:
        assert set(extras.split(",")) <= _extras()


def _header_of_example() -> str:
    lines = (DEPLOY / "berkas.conf.example").read_text().splitlines()
    head = []
    for line in lines:
        if not line.startswith("#"):
            break
        head.append(line)
    return "\n".join(head)


def _extras() -> set[str]:
    pyproject = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())
    return set(pyproject["project"]["optional-dependencies"])


def _credentials_directory(tmp_path: Path, config: str, key_text: str) -> Path:
    """What systemd 252 (Debian 12) gives the unit: /run/credentials/berkas.service, 0700,
    one file per credential, mode 0400, owned by the service's user (chown on the ramfs it
    mounts there; ramfs has no ACLs), here the user running the test."""
    credentials = tmp_path / "run" / "credentials" / "berkas.service"
    credentials.mkdir(parents=True)
    credentials.chmod(0o700)
    (credentials / "berkas.conf").write_text(config)
    (credentials / "master-key").write_text(key_text + "\n")
    for name in SECRET_FILES:
        (credentials / name).chmod(0o400)
    return credentials


def _service_environment(credentials: Path, data_dir: Path) -> dict[str, str]:
    """The environment the unit gives berkas, with %d expanded to ``credentials`` and the
    data dir moved to ``data_dir`` (the test cannot write /var/lib/berkas)."""
    environment = _unit_environment(_service_entries(UNIT.read_text()))
    assert environment["BERKAS_DATA_DIR"] == "/var/lib/berkas"
    environment = {
        name: value.replace("%d", str(credentials)) for name, value in environment.items()
    }
    environment["BERKAS_DATA_DIR"] = str(data_dir)
    environment["CREDENTIALS_DIRECTORY"] = str(credentials)
    return environment


def _example_config() -> str:
    return (DEPLOY / "berkas.conf.example").read_text() + (
        "BERKAS_LINK_SECRET=credential-link-secret-0123456789abcdef\n"
    )


def test_berkas_starts_from_the_credential_copies(tmp_path: Path) -> None:
    key_text = new_master_key_text()
    credentials = _credentials_directory(tmp_path, _example_config(), key_text)
    data_dir = tmp_path / "var-lib-berkas"
    environment = _service_environment(credentials, data_dir)
    with mock.patch.dict(os.environ, environment, clear=True):
        settings = load_settings()
        # The values come from the copy of the config...
        assert settings.base_url == "https://berkas.example.com"
        assert settings.env == "production"
        assert settings.link_secret == "credential-link-secret-0123456789abcdef"
        # ...and the master key from the copy of the key file, mode 0400.
        assert settings.master_key is None
        assert settings.master_key_file == credentials / "master-key"
        expected = parse_master_key(key_text, where="test").kid
        assert _sealer(settings, create=True).current.kid == expected
        # A whole start (data dir, migrations, first signing key and link secret sealed):
        # everything is sealed under that key, and no key file appears in the data dir.
        prepare(settings, serving=False).close()
        status = secrets_status(settings)
    assert status["sealing_with"] == expected
    assert status["master_keys"] == [expected]
    assert not (data_dir / "master-key").exists()
    assert sorted(p.name for p in credentials.iterdir()) == sorted(SECRET_FILES)


def test_the_same_key_file_loosened_in_a_plain_path_is_refused(tmp_path: Path) -> None:
    # The workaround the old instructions invited: the key where the dynamic user could
    # read it because everyone can. berkas's own check refuses it, naming the mode.
    etc = tmp_path / "etc" / "berkas"
    etc.mkdir(parents=True)
    (etc / "berkas.conf").write_text(_example_config())
    (etc / "master-key").write_text(new_master_key_text() + "\n")
    environment = {
        "BERKAS_CONFIG_FILE": str(etc / "berkas.conf"),
        "BERKAS_MASTER_KEY_FILE": str(etc / "master-key"),
        "BERKAS_DATA_DIR": str(tmp_path / "d"),
    }
    for mode in (0o640, 0o644, 0o604, 0o440):
        (etc / "master-key").chmod(mode)
        with mock.patch.dict(os.environ, environment, clear=True):
            settings = load_settings()
            with pytest.raises(SealingError, match=f"group or others \\(mode {mode:04o}\\)"):
                _sealer(settings, create=False)
    assert not (tmp_path / "d").exists()


def test_a_config_that_also_holds_the_master_key_stops_the_start(tmp_path: Path) -> None:
    # The unit sets BERKAS_MASTER_KEY_FILE; a key pasted into the config as well (what the
    # old example suggested) is refused rather than one of the two silently winning.
    config = _example_config() + f"BERKAS_MASTER_KEY={new_master_key_text()}\n"
    credentials = _credentials_directory(tmp_path, config, new_master_key_text())
    environment = _service_environment(credentials, tmp_path / "d")
    with (
        mock.patch.dict(os.environ, environment, clear=True),
        pytest.raises(ValueError, match="BERKAS_MASTER_KEY or BERKAS_MASTER_KEY_FILE, not both"),
    ):
        load_settings()


# systemd's POSIX ACL layout (struct posix_acl_xattr_header/entry, little-endian).
_ACL_USER_OBJ, _ACL_USER, _ACL_GROUP_OBJ, _ACL_MASK, _ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
_ACL_NO_ID = 0xFFFFFFFF


def test_a_credential_copy_granted_by_acl_is_accepted(tmp_path: Path) -> None:
    # systemd 255 and later (kernel 6.3+) put credentials on tmpfs with noswap, and on tmpfs
    # the copy stays root's, mode 0400, with a POSIX ACL entry giving the service's uid
    # read: the ACL mask then shows as the group bits, so stat says 0440 although no group
    # can read it (src/core/exec-credential.c write_credential, fd_add_uid_acl_permission).
    key_text = new_master_key_text()
    credentials = _credentials_directory(tmp_path, _example_config(), key_text)
    key = credentials / "master-key"
    entries = [
        (_ACL_USER_OBJ, 4, _ACL_NO_ID),
        (_ACL_USER, 4, os.geteuid()),
        (_ACL_GROUP_OBJ, 0, _ACL_NO_ID),
        (_ACL_MASK, 4, _ACL_NO_ID),
        (_ACL_OTHER, 0, _ACL_NO_ID),
    ]
    acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    try:
        os.setxattr(key, "system.posix_acl_access", acl)
    except (AttributeError, OSError) as exc:
        pytest.skip(f"no POSIX ACLs on {tmp_path}: {exc}")
    assert key.stat().st_mode & 0o777 == 0o440
    with mock.patch.dict(os.environ, _service_environment(credentials, tmp_path / "d"), clear=True):
        sealer = _sealer(load_settings(), create=False)
    assert sealer.current.kid == parse_master_key(key_text, where="test").kid
    # The same file outside the credentials directory is refused for its group bits.
    with mock.patch.dict(os.environ, {}, clear=True), pytest.raises(SealingError, match="0440"):
        read_key_file(key)
