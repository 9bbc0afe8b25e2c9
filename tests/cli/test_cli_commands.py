"""The operator's ``berkas`` verbs, run through click on a temporary data dir.

Failures must be one readable line naming the problem, never a traceback.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
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


def table_rows(output: str) -> list[dict[str, str]]:
    """A printed table as one dict per row, keyed by the header (cells are 2+ spaces apart)."""
    header, *lines = output.strip().splitlines()
    names = re.split(r"\s{2,}", header)
    return [dict(zip(names, re.split(r"\s{2,}", line), strict=True)) for line in lines]


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
    (row,) = table_rows(run("clients", "list").stdout)
    assert (row["CLIENT-ID"], row["STATE"]) == ("BRN-0001-10791114622547", "enabled")


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
    assert [row["STATE"] for row in table_rows(run("clients", "list").stdout)] == ["disabled"]

    assert run("clients", "enable", "BRN-0001-1").exit_code == 0
    assert [row["STATE"] for row in table_rows(run("clients", "list").stdout)] == ["enabled"]


def test_disabling_an_unknown_client_says_so(run: Any) -> None:
    result = run("clients", "disable", "UNKNOWN")

    assert_refused(result, "'UNKNOWN'", "client_not_found")


def test_rotating_keys_changes_the_current_kid_and_keeps_the_old_one(run: Any) -> None:
    assert run("db", "migrate").exit_code == 0  # keys list alone never makes a data dir
    before = json.loads(run("keys", "list", "--json").stdout)
    assert [key["state"] for key in before] == ["active"]
    old_kid = before[0]["kid"]

    rotated = run("keys", "rotate")

    assert rotated.exit_code == 0, rotated.output
    after = json.loads(run("keys", "list", "--json").stdout)
    new_kid = after[0]["kid"]  # the current key is listed first
    assert new_kid != old_kid
    assert new_kid in rotated.stdout
    assert [(key["kid"], key["state"]) for key in after] == [
        (new_kid, "active"),
        (old_kid, "retiring"),
    ]
    assert set(after[0]) == {"kid", "state", "created_at", "retired_at", "verifies_until"}
    assert (after[0]["retired_at"], after[0]["verifies_until"]) == (None, None)
    # The old key verifies the tokens it signed for the longest token lifetime (1440 min)
    # and a few minutes' margin (leeway, nodes' key sync).
    retired = datetime.fromisoformat(after[1]["retired_at"])
    verifies = datetime.fromisoformat(after[1]["verifies_until"]) - retired
    assert timedelta(days=1) < verifies < timedelta(days=1, minutes=10)


def test_keys_list_is_a_table_of_states_and_dates(run: Any) -> None:
    assert run("db", "migrate").exit_code == 0
    run("keys", "rotate")

    listed = run("keys", "list")

    assert listed.exit_code == 0, listed.output
    active, retiring = table_rows(listed.stdout)
    assert list(active) == ["KID", "STATE", "CREATED", "RETIRED", "VERIFIES UNTIL"]
    assert (active["STATE"], active["RETIRED"], active["VERIFIES UNTIL"]) == ("active", "-", "-")
    assert retiring["STATE"] == "retiring"
    assert retiring["RETIRED"] == active["CREATED"]  # retired when the new key came
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", retiring["VERIFIES UNTIL"])
    assert "PRIVATE" not in listed.stdout


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


# labels and secret rotation


def created(run: Any, *args: str) -> dict[str, str]:
    result = run("clients", "create", "--json", *args)
    assert result.exit_code == 0, result.output
    credentials: dict[str, str] = json.loads(result.stdout)
    return credentials


def test_clients_list_is_a_table_with_labels(run: Any) -> None:
    created(run, "--client-id", "BRN-0001-1", "--label", "Toko Maju")
    created(run, "--client-id", "BRN-0002-2")
    run("clients", "disable", "BRN-0002-2")

    listed = run("clients", "list")

    assert listed.exit_code == 0, listed.output
    first, second = table_rows(listed.stdout)
    assert list(first) == [
        "CLIENT-ID",
        "LABEL",
        "STATE",
        "CREATED",
        "SECRET ROTATED",
        "OLD SECRET UNTIL",
    ]
    assert (first["CLIENT-ID"], first["LABEL"], first["STATE"]) == (
        "BRN-0001-1",
        "Toko Maju",
        "enabled",
    )
    assert (second["LABEL"], second["STATE"], second["SECRET ROTATED"]) == ("-", "disabled", "-")
    assert "SK-" not in listed.stdout


def test_an_empty_list_says_how_to_add_a_client(run: Any) -> None:
    assert run("db", "migrate").exit_code == 0

    listed = run("clients", "list")

    assert listed.exit_code == 0, listed.output
    assert listed.stdout == ""
    assert "berkas clients create" in listed.stderr


def test_a_label_is_set_changed_and_removed(run: Any) -> None:
    created(run, "--client-id", "BRN-0001-1")

    labelled = run("clients", "label", "BRN-0001-1", "Toko Maju Jaya")

    assert labelled.exit_code == 0, labelled.output
    assert "BRN-0001-1 labelled 'Toko Maju Jaya'" in labelled.stdout
    rows = json.loads(run("clients", "list", "--json").stdout)
    assert [row["label"] for row in rows] == ["Toko Maju Jaya"]
    assert run("clients", "label", "BRN-0001-1", "").exit_code == 0
    assert [row["LABEL"] for row in table_rows(run("clients", "list").stdout)] == ["-"]


def test_a_bad_label_or_unknown_client_is_one_line(run: Any) -> None:
    created(run, "--client-id", "BRN-0001-1")

    refused = run("clients", "label", "BRN-0001-1", "x" * 101)
    assert_refused(refused, "client_label_invalid", "1-100 printable characters")
    assert len(problems(refused)) == 1
    assert_refused(run("clients", "label", "BRN-0404", "Toko"), "'BRN-0404'", "client_not_found")
    assert_refused(run("clients", "create", "--label", "a\nb"), "client_label_invalid")


def test_rotate_secret_prints_a_new_secret_once_and_lists_the_grace(run: Any) -> None:
    old = created(run, "--client-id", "BRN-0001-1")
    before = datetime.now(UTC).replace(microsecond=0)

    rotated = run("clients", "rotate-secret", "BRN-0001-1", "--grace", "2h", "--json")

    assert rotated.exit_code == 0, rotated.output
    answer = json.loads(rotated.stdout)
    assert set(answer) == {
        "client_id",
        "secret_key",
        "previous_secret_valid_until",
        "dropped_previous_secret_valid_until",
    }
    assert answer["client_id"] == "BRN-0001-1"
    assert answer["secret_key"].startswith("SK-")
    assert answer["secret_key"] != old["secret_key"]
    until = datetime.fromisoformat(answer["previous_secret_valid_until"])
    assert before + timedelta(hours=2) <= until <= datetime.now(UTC) + timedelta(hours=2)
    assert answer["dropped_previous_secret_valid_until"] is None

    (row,) = json.loads(run("clients", "list", "--json").stdout)
    assert row["previous_secret_valid_until"] == answer["previous_secret_valid_until"]
    assert datetime.fromisoformat(row["secret_rotated_at"]) == until - timedelta(hours=2)
    (line,) = table_rows(run("clients", "list").stdout)
    assert line["OLD SECRET UNTIL"] == until.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert line["SECRET ROTATED"] != "-"


def test_rotate_secret_says_what_the_old_secrets_can_still_do(run: Any) -> None:
    created(run, "--client-id", "BRN-0001-1")

    first = run("clients", "rotate-secret", "BRN-0001-1")  # the default grace: 24 hours
    assert first.exit_code == 0, first.output
    assert "Client-Id:  BRN-0001-1\nSecret key: SK-" in first.stdout
    assert "The old secret key keeps working until" in first.stdout
    assert "stopped working now" not in first.stdout

    second = run("clients", "rotate-secret", "BRN-0001-1", "--grace", "30m")
    assert second.exit_code == 0, second.output
    assert "only one old secret key is kept" in second.stdout

    at_once = run("clients", "rotate-secret", "BRN-0001-1", "--grace", "0", "--json")
    assert json.loads(at_once.stdout)["previous_secret_valid_until"] is None
    dropped = json.loads(at_once.stdout)["dropped_previous_secret_valid_until"]
    assert dropped is not None
    (row,) = table_rows(run("clients", "list").stdout)
    assert row["OLD SECRET UNTIL"] == "-"


def test_the_default_grace_comes_from_the_setting(run: Any) -> None:
    created(run, "--client-id", "BRN-0001-1")
    env = {"BERKAS_SECRET_GRACE_HOURS": "3"}

    rotated = run("clients", "rotate-secret", "BRN-0001-1", "--json", env=env)

    assert rotated.exit_code == 0, rotated.output
    until = datetime.fromisoformat(json.loads(rotated.stdout)["previous_secret_valid_until"])
    assert abs(until - datetime.now(UTC) - timedelta(hours=3)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("grace", "needle"),
    [
        ("2", "give a number and a unit"),
        ("1w", "90s, 30m, 24h or 7d"),
        ("31d", "up to 30 days"),
        # Said as a person says it, not as timedelta prints it ("40 days, 0:00:00").
        ("40d", "a grace of 40 days is not allowed"),
        ("745h", "a grace of 31 days 1 hour is not allowed"),
    ],
)
def test_a_bad_grace_is_refused_and_the_secret_kept(run: Any, grace: str, needle: str) -> None:
    old = created(run, "--client-id", "BRN-0001-1")

    result = run("clients", "rotate-secret", "BRN-0001-1", "--grace", grace)

    assert_refused(result, needle)
    assert "Secret key" not in result.stdout
    (row,) = json.loads(run("clients", "list", "--json").stdout)
    assert row["secret_rotated_at"] is None
    assert old["secret_key"]


def test_rotating_an_unknown_client_says_so(run: Any) -> None:
    assert run("db", "migrate").exit_code == 0

    assert_refused(run("clients", "rotate-secret", "BRN-0404"), "'BRN-0404'", "client_not_found")


@pytest.mark.parametrize("variable_value", ["-1", "721", "soon"])
def test_an_invalid_grace_setting_stops_with_the_variable_named(
    run: Any, variable_value: str
) -> None:
    result = run("clients", "rotate-secret", "X", env={"BERKAS_SECRET_GRACE_HOURS": variable_value})

    assert_refused(result, "invalid configuration", "BERKAS_SECRET_GRACE_HOURS")


def test_secrets_status_measures_the_master_key_against_its_schedule(
    run: Any, tmp_path: Path
) -> None:
    key = tmp_path / "master-key"
    first = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    key.write_text(f"{first}\n")
    key.chmod(0o600)
    env = {"BERKAS_MASTER_KEY_FILE": str(key)}
    assert run("clients", "create", "--json", env=env).exit_code == 0

    fresh = run("secrets", "status", "--check", env=env)
    assert fresh.exit_code == 0, fresh.output
    report = json.loads(fresh.stdout)
    assert report["sealing_key_age_days"] == 0
    assert report["rotate_every_days"] == 365
    assert report["rotation_due"] is False
    assert report["older_keys_held"] == []
    assert report["clear_values"] == []

    # A year and a day later (the first use moved back in the database), it is due.
    database = tmp_path / "data" / "berkas.db"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE master_keys SET first_used_at = ?",
            ((datetime.now(UTC) - timedelta(days=366)).replace(tzinfo=None).isoformat(" "),),
        )
    due = run("secrets", "status", "--check", env=env)
    assert json.loads(due.stdout)["rotation_due"] is True
    assert_refused(due, "days old; the schedule is 365 days")
    assert run("secrets", "status", env=env).exit_code == 0  # without --check: a report

    # Rotated: the old key is still held until rekey, then held although nothing needs it.
    second = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
    key.write_text(f"{second}\n{first}\n")
    assert_refused(run("secrets", "status", "--check", env=env), "run `berkas secrets rekey`")
    assert run("secrets", "rekey", env=env).exit_code == 0
    held = run("secrets", "status", "--check", env=env)
    assert_refused(held, "still configured but nothing needs them", "destroy them")
    assert json.loads(held.stdout)["sealing_key_age_days"] == 0  # the new key's own age
    key.write_text(f"{second}\n")
    assert run("secrets", "status", "--check", env=env).exit_code == 0
