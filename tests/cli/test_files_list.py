"""``berkas files list`` and ``berkas files show``: the operator's view of any client's
stored files, as a table or JSON, and each refusal one readable line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from berkas.cli.main import main
from tests.cli.test_cli_commands import assert_refused, table_rows
from tests.support import samples
from tests.support.inprocess import InProcess
from tests.support.partner import PREFIX


@pytest.fixture
def app(tmp_path: Path) -> Iterator[InProcess]:
    made = InProcess(tmp_path / "data")
    yield made
    made.close()


def run(app: InProcess, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"BERKAS_DATA_DIR": str(app.data_dir)})


def listed(app: InProcess, *args: str) -> list[dict[str, Any]]:
    result = run(app, "files", "list", "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_lists_every_clients_files_newest_first_with_filters(app: InProcess) -> None:
    first, second = app.partner(), app.partner()
    ids = [
        first.upload(samples.png(seed=1), category="LOGO", code=None).json()["id"],
        second.upload(samples.png(seed=2)).json()["id"],
        first.upload(samples.png(seed=3)).json()["id"],
    ]
    app.services.files.set_hold(ids[0], True)

    assert [r["id"] for r in listed(app)] == ids[::-1]
    assert [r["id"] for r in listed(app, "--client", first.client_id)] == [ids[2], ids[0]]
    assert [r["id"] for r in listed(app, "--category", "logo")] == [ids[0]]
    assert [r["id"] for r in listed(app, "--code", "KTP", "--limit", "1")] == [ids[2]]
    assert listed(app, "--created-lt", "2000-01-01") == []
    row = listed(app, "--client", second.client_id)[0]
    assert (row["client_id"], row["category"], row["code"], row["legal_hold"]) == (
        second.client_id,
        "DOCUMENT",
        "KTP",
        False,
    )
    table = run(app, "files", "list")
    assert table.exit_code == 0, table.output
    rows = table_rows(table.stdout)
    assert [r["ID"] for r in rows] == ids[::-1]
    assert (rows[2]["CLIENT"], rows[2]["HOLD"], rows[0]["HOLD"]) == (first.client_id, "held", "-")


def test_an_empty_list_says_so_on_stderr(app: InProcess) -> None:
    result = run(app, "files", "list", "--client", "BRN-0009-0000000000000")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no files match" in result.stderr


def test_shows_a_stored_file_and_a_deleted_one(app: InProcess) -> None:
    partner = app.partner()
    kept = partner.upload(samples.png(seed=4)).json()
    gone = partner.upload(samples.png(seed=5)).json()["id"]
    deleted = partner.http.request("DELETE", f"{PREFIX}/file/{gone}", headers=partner.auth())
    assert deleted.status_code == 204

    shown = json.loads(run(app, "files", "show", kept["id"], "--json").stdout)
    assert (shown["state"], shown["client_id"], shown["size"]) == (
        "stored",
        partner.client_id,
        kept["size"],
    )
    assert shown["sha256"] == kept["sha256"]
    assert [e["kind"] for e in shown["events"]] == ["uploaded"]
    was = json.loads(run(app, "files", "show", gone, "--json").stdout)
    assert (was["state"], was["client_id"], was["deleted_by"]) == (
        "deleted",
        partner.client_id,
        "partner",
    )
    assert [e["kind"] for e in was["events"]] == ["uploaded", "deleted"]
    text = run(app, "files", "show", gone).stdout
    assert "state:            deleted" in text
    assert "deleted partner" in text


def test_refusals_are_one_line(app: InProcess) -> None:
    assert_refused(run(app, "files", "show", "DCM-0001-0000000000001"), "No file with id")
    assert_refused(
        run(app, "files", "list", "--created-gte", "yesterday"),
        'created_gte "yesterday" is not an RFC 3339 time',
        "(created_invalid)",
    )
    assert_refused(run(app, "files", "list", "--category", "SELFIE"), "SELFIE")
    assert_refused(
        run(app, "files", "list", "--code", "ktp"), "did you mean KTP?", "(code_invalid)"
    )
