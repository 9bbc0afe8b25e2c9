"""``berkas clients``: partner clients, their secrets and labels."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from berkas.cli.common import data_dir_option, guard, iso_or_none, reading, writing
from berkas.core.wire import iso8601

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.


@click.group()
def clients() -> None:
    """Partner clients: create, list, label, rotate-secret, disable, enable."""


@clients.command("create")
@click.option(
    "--client-id", default=None, help="e.g. BRN-0001-10791114622547 (generated if omitted)."
)
@click.option("--label", default=None, help='Your name for the partner, e.g. "Toko Maju".')
@click.option("--json", "as_json", is_flag=True, help="Print {client_id, secret_key} as JSON.")
@data_dir_option
def clients_create(
    client_id: str | None, label: str | None, as_json: bool, data_dir: Path | None
) -> None:
    """Create a client with a strong random secret key (printed once)."""

    def run() -> None:
        with writing(data_dir) as services:
            client = services.clients.create(client_id, label=label)
        if as_json:
            click.echo(json.dumps({"client_id": client.client_id, "secret_key": client.secret_key}))
        else:
            click.echo(f"Client-Id:  {client.client_id}\nSecret key: {client.secret_key}")

    guard(run)


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@data_dir_option
def clients_list(as_json: bool, data_dir: Path | None) -> None:
    """List clients as a table (secrets are never printed here)."""

    def run() -> None:
        from berkas.cli.tables import NONE, moment, table

        with reading(data_dir) as services:
            rows = services.clients.list()
        now = datetime.now(UTC)
        if as_json:
            listed = []
            for c in rows:
                until = c.previous_expires_at if c.previous_secret_at(now) else None
                listed.append(
                    {
                        "client_id": c.client_id,
                        "label": c.label,
                        "enabled": c.enabled,
                        "created_at": iso8601(c.created_at),
                        "secret_rotated_at": iso_or_none(c.secret_rotated_at),
                        "previous_secret_valid_until": iso_or_none(until),
                    }
                )
            click.echo(json.dumps(listed))
            return
        if not rows:
            click.echo("no clients yet; add one with: berkas clients create", err=True)
            return
        headers = ("CLIENT-ID", "LABEL", "STATE", "CREATED", "SECRET ROTATED", "OLD SECRET UNTIL")
        cells = [
            (
                c.client_id,
                c.label or NONE,
                "enabled" if c.enabled else "disabled",
                moment(c.created_at),
                moment(c.secret_rotated_at),
                moment(c.previous_expires_at if c.previous_secret_at(now) else None),
            )
            for c in rows
        ]
        click.echo(table(headers, cells))

    guard(run)


@clients.command("label")
@click.argument("client_id")
@click.argument("text")
@data_dir_option
def clients_label(client_id: str, text: str, data_dir: Path | None) -> None:
    """Name a client for operators, shown by clients list ("" removes the label)."""

    def run() -> None:
        with writing(data_dir) as services:
            client = services.clients.set_label(client_id, text)
        shown = f"labelled {client.label!r}" if client.label else "has no label now"
        click.echo(f"{client.client_id} {shown}")

    guard(run)


@clients.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--grace",
    default=None,
    metavar="DURATION",
    help="How long the old secret keeps working: 90s, 30m, 24h, 7d, or 0 for not at all "
    "(env BERKAS_SECRET_GRACE_HOURS, default 24h; at most 30d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new secret and dates as JSON.")
@data_dir_option
def clients_rotate_secret(
    client_id: str, grace: str | None, as_json: bool, data_dir: Path | None
) -> None:
    """Issue a new secret key (printed once); the old one keeps working for the grace.

    Every node verifies with both at once (they are in the database). Rotating again
    within a grace keeps only the secret it replaces: the one before stops at once.
    """

    def run() -> None:
        from berkas.cli.tables import moment, parse_duration

        try:
            chosen = None if grace is None else parse_duration(grace)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--grace'") from None
        with writing(data_dir) as services:
            done = services.clients.rotate_secret(client_id, chosen)
        client = done.client
        if as_json:
            answer = {
                "client_id": client.client_id,
                "secret_key": client.secret_key,
                "previous_secret_valid_until": iso_or_none(done.previous_valid_until),
                "dropped_previous_secret_valid_until": iso_or_none(done.dropped_previous_until),
            }
            click.echo(json.dumps(answer))
            return
        click.echo(f"Client-Id:  {client.client_id}\nSecret key: {client.secret_key}")
        if done.previous_valid_until is None:
            click.echo("The old secret key no longer works.")
        else:
            until = moment(done.previous_valid_until)
            click.echo(f"The old secret key keeps working until {until}.")
        if done.dropped_previous_until is not None:
            # Only one previous secret is kept per client (see ClientService.rotate_secret).
            click.echo(
                "The secret key the previous rotation replaced (it had until "
                f"{moment(done.dropped_previous_until)}) stopped working now: only one "
                "old secret key is kept."
            )

    guard(run)


@clients.command("disable")
@click.argument("client_id")
@data_dir_option
def clients_disable(client_id: str, data_dir: Path | None) -> None:
    """Disable a client: no new tokens, and tokens already issued stop working."""
    guard(lambda: _set_enabled(data_dir, client_id, False))


@clients.command("enable")
@click.argument("client_id")
@data_dir_option
def clients_enable(client_id: str, data_dir: Path | None) -> None:
    """Enable a disabled client again."""
    guard(lambda: _set_enabled(data_dir, client_id, True))


def _set_enabled(data_dir: Path | None, client_id: str, enabled: bool) -> None:
    with writing(data_dir) as services:
        services.clients.set_enabled(client_id, enabled)
    click.echo(f"{client_id} {'enabled' if enabled else 'disabled'}")
