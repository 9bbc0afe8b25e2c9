"""The operator's ``berkas`` verbs, run through click on a temporary data dir.

Failures must be one readable line naming the problem, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from berkas.cli.main import main


@pytest.fixture
def run(tmp_path: Path) -> Any:
    runner = CliRunner()
    data_dir = tmp_path / "data"

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(
            main, list(args), env={"BERKAS_DATA_DIR": str(data_dir), **(env or {})}
        )

    return invoke


def assert_refused(result: Result, *needles: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def problems(result: Result) -> list[str]:
    """What stderr says besides naming the data dir and database used (or made)."""
    return [
        line
        for line in result.stderr.splitlines()
        if not line.startswith(("data dir: ", "created a new berkas data dir at "))
    ]


def test_a_created_client_is_printed_once_as_json_and_listed(run: Any) -> None:
    created = run("clients", "create", "--json")

    assert created.exit_code == 0, created.output
    credentials = json.loads(created.stdout)
    assert set(credentials) == {"client_id", "secret_key"}
    assert credentials["secret_key"].startswith("SK-")

    listed = run("clients", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["client_id"], r["enabled"]) for r in rows] == [(credentials["client_id"], True)]
    assert credentials["secret_key"] not in listed.stdout


def test_a_chosen_client_id_is_kept(run: Any) -> None:
    created = run("clients", "create", "--client-id", "BRN-0001-10791114622547")

    assert created.exit_code == 0, created.output
    assert "Client-Id:  BRN-0001-10791114622547" in created.stdout
    assert "BRN-0001-10791114622547\tenabled" in run("clients", "list").stdout


def test_a_bad_client_id_is_one_line_of_explanation(run: Any) -> None:
    result = run("clients", "create", "--client-id", "../evil id")

    assert_refused(result, "'../evil id'", "client_id_invalid")
    assert len(problems(result)) == 1
    assert json.loads(run("clients", "list", "--json").stdout) == []


def test_a_duplicate_client_id_is_refused(run: Any) -> None:
    assert run("clients", "create", "--client-id", "BRN-0001-1").exit_code == 0

    result = run("clients", "create", "--client-id", "BRN-0001-1")

    assert_refused(result, "BRN-0001-1", "client_exists")
    assert len(problems(result)) == 1


def test_disable_and_enable_show_in_the_list(run: Any) -> None:
    run("clients", "create", "--client-id", "BRN-0001-1")

    disabled = run("clients", "disable", "BRN-0001-1")
    assert disabled.exit_code == 0, disabled.output
    assert "BRN-0001-1\tdisabled" in run("clients", "list").stdout

    assert run("clients", "enable", "BRN-0001-1").exit_code == 0
    assert "BRN-0001-1\tenabled" in run("clients", "list").stdout


def test_disabling_an_unknown_client_says_so(run: Any) -> None:
    result = run("clients", "disable", "UNKNOWN")

    assert_refused(result, "'UNKNOWN'", "client_not_found")


def test_rotating_keys_changes_the_current_kid_and_keeps_the_old_one(run: Any) -> None:
    assert run("db", "migrate").exit_code == 0  # keys list alone never makes a data dir
    before = json.loads(run("keys", "list").stdout)["keys"]
    assert len(before) == 1
    old_kid = before[0]["kid"]

    rotated = run("keys", "rotate")

    assert rotated.exit_code == 0, rotated.output
    after = json.loads(run("keys", "list").stdout)["keys"]
    new_kid = after[0]["kid"]  # the current key is listed first
    assert new_kid != old_kid
    assert new_kid in rotated.stdout
    assert [key["kid"] for key in after] == [new_kid, old_kid]
    assert all(key["alg"] == "RS256" and "d" not in key for key in after)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BERKAS_PORT", "abc"),
        ("BERKAS_PORT", "70000"),
        ("BERKAS_LINK_SECRET", "short"),
        ("BERKAS_NODE_ID", "10000"),
        ("BERKAS_ENV", "Prod/../x"),
    ],
)
@pytest.mark.parametrize("verb", [("clients", "list"), ("keys", "list"), ("db", "migrate")])
def test_an_invalid_setting_stops_with_the_variable_named(
    run: Any, variable: str, value: str, verb: tuple[str, ...]
) -> None:
    result = run(*verb, env={variable: value})

    assert_refused(result, "invalid configuration", variable)


def test_db_migrate_reports_an_up_to_date_schema(run: Any) -> None:
    result = run("db", "migrate")

    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout


@pytest.mark.parametrize("verb", [("clients", "list"), ("keys", "list"), ("db", "migrate")])
def test_an_unsupported_database_url_is_one_line_for_every_verb(
    run: Any, verb: tuple[str, ...]
) -> None:
    result = run(*verb, env={"BERKAS_DATABASE_URL": "mysql://db/berkas"})

    assert_refused(result, "'mysql'", "postgresql://")
    assert len(result.output.strip().splitlines()) == 1


def test_a_cross_field_setting_error_has_no_empty_variable_name(run: Any) -> None:
    result = run(
        "clients",
        "list",
        env={"BERKAS_TOKEN_DEFAULT_MINUTES": "100", "BERKAS_TOKEN_MAX_MINUTES": "10"},
    )

    assert_refused(result, "BERKAS_TOKEN_DEFAULT_MINUTES")
    assert "BERKAS_:" not in result.output
