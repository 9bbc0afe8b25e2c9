"""A value of the wrong type stops ``berkas serve`` with one line per setting: its name,
where it was set (the environment or the config file), the value, and what is expected;
never pydantic's wording, never a credential."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_strict_config import berkas, serve


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        (
            "BERKAS_PORT",
            "abc",
            'BERKAS_PORT (in the environment) is "abc": expected a whole number',
        ),
        (
            "BERKAS_PORT",
            "70000",
            'BERKAS_PORT (in the environment) is "70000": expected a number at most 65535',
        ),
        (
            "BERKAS_NODE_ID",
            "first",
            "BERKAS_NODE_ID (in the environment) is \"first\": expected a whole number or 'auto'",
        ),
        (
            "BERKAS_FETCH_ENABLED",
            "maybe",
            'BERKAS_FETCH_ENABLED (in the environment) is "maybe": expected true or false',
        ),
        (
            "BERKAS_LOG_FORMAT",
            "xml",
            'BERKAS_LOG_FORMAT (in the environment) is "xml": expected text or json',
        ),
        (
            "BERKAS_LINK_MODE",
            "fast",
            "BERKAS_LINK_MODE (in the environment) is \"fast\": expected 'proxy' or 'presigned'",
        ),
        (
            "BERKAS_RETENTION_DAYS",
            "nan",
            'BERKAS_RETENTION_DAYS (in the environment) is "nan": expected a finite number',
        ),
    ],
)
def test_a_wrong_type_in_the_environment_is_one_line_naming_it(
    tmp_path: Path, name: str, value: str, line: str
) -> None:
    # Not serve(), whose --port would win over BERKAS_PORT: nothing here can start.
    done = berkas("serve", env={"BERKAS_DATA_DIR": str(tmp_path / "data"), name: value})

    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().splitlines() == ["Error: invalid configuration:", f"  {line}"]
    assert "Input should be" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_a_wrong_type_in_the_config_file_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "berkas.env"
    config.write_text("BERKAS_PORT=eighty\nBERKAS_FETCH_CONNECT_TIMEOUT=0\n")

    done = berkas(
        "serve",
        env={"BERKAS_DATA_DIR": str(tmp_path / "data"), "BERKAS_CONFIG_FILE": str(config)},
    )

    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()[1:]
    assert f'  BERKAS_PORT (in {config}) is "eighty": expected a whole number' in lines
    assert (
        f'  BERKAS_FETCH_CONNECT_TIMEOUT (in {config}) is "0": expected a number greater than 0.0'
        in lines
    )


def test_a_credential_is_named_but_never_printed(tmp_path: Path) -> None:
    secret = "only-31-characters-long-secret!"
    database = "postgresql://berkas:hunter2-in-a-url@db.example:5432/berkas"

    done = serve(
        {
            "BERKAS_DATA_DIR": str(tmp_path / "data"),
            "BERKAS_LINK_SECRET": secret,
            "BERKAS_NODE_ID": database,  # a URL pasted into the wrong setting
        }
    )

    assert done.returncode == 1
    assert secret not in done.stderr
    assert "hunter2" not in done.stderr
    assert (
        "  BERKAS_LINK_SECRET (in the environment) is (not shown): expected at least 32 "
        "characters" in done.stderr.splitlines()
    )
    assert '"postgresql://***@db.example:5432/berkas"' in done.stderr


def test_a_validators_own_message_is_kept(tmp_path: Path) -> None:
    done = berkas(
        "clients",
        "list",
        env={"BERKAS_DATA_DIR": str(tmp_path / "data"), "BERKAS_FETCH_ALLOW_PORTS": "443,70000"},
    )

    assert done.returncode == 1
    assert "  BERKAS_FETCH_ALLOW_PORTS: 70000 is not a TCP port" in done.stderr.splitlines()
