"""``berkas keys``: the token signing keys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from berkas.cli.common import data_dir_option, guard, iso_or_none, reading, writing
from berkas.core.wire import iso8601

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.


@click.group()
def keys() -> None:
    """Token signing keys."""


@keys.command("rotate")
@data_dir_option
def keys_rotate(data_dir: Path | None) -> None:
    """Add a new signing key; old keys verify until every token they signed has expired."""

    def run() -> None:
        with writing(data_dir) as services:
            kid = services.keys.rotate()
        click.echo(
            f"new signing key {kid}; every running node signs with it within seconds, and "
            "tokens signed with the old key verify until they expire"
        )

    guard(run)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@data_dir_option
def keys_list(as_json: bool, data_dir: Path | None) -> None:
    """List the signing keys: active, retiring (verifies its tokens until ...), expired.

    The public keys themselves are served at /.well-known/jwks.json.
    """

    def run() -> None:
        from berkas.cli.tables import moment, table

        with reading(data_dir) as services:
            listed = services.keys.status()
        if as_json:
            rows = [
                {
                    "kid": key.kid,
                    "state": key.state,
                    "created_at": iso8601(key.created_at),
                    "retired_at": iso_or_none(key.retired_at),
                    "verifies_until": iso_or_none(key.verifies_until),
                }
                for key in listed
            ]
            click.echo(json.dumps(rows))
            return
        headers = ("KID", "STATE", "CREATED", "RETIRED", "VERIFIES UNTIL")
        cells = [
            (
                key.kid,
                key.state,
                moment(key.created_at),
                moment(key.retired_at),
                moment(key.verifies_until),
            )
            for key in listed
        ]
        click.echo(table(headers, cells))

    guard(run)
