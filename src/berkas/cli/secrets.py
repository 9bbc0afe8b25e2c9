"""``berkas secrets``: what the master key seals, rekeying, and the one-time sealing of
client secrets an older release stored in clear."""

from __future__ import annotations

import json
from pathlib import Path

import click

from berkas.cli.common import data_dir_option, guard, settings_from, show_where, writing

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.


@click.group("secrets")
def secrets_group() -> None:
    """Secrets sealed under the master key (client secrets, signing keys, link secret)."""


@secrets_group.command("status")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1, saying why, when the master key is due for rotation, an older key is "
    "still held, or a sealed column holds a value in clear (for cron or monitoring).",
)
@data_dir_option
def secrets_status(data_dir: Path | None, check: bool) -> None:
    """Show which master key seals how many secrets of each kind, the sealing key's age
    against the rotation schedule, and older keys still held (as JSON)."""

    def run() -> None:
        from berkas.wiring import secrets_status, status_problems

        # Not through reading: that opens every signing key, and this must also work
        # when a master key they need is missing.
        settings = settings_from(data_dir=data_dir)
        report = secrets_status(settings)
        show_where(settings)
        click.echo(json.dumps(report, indent=2))
        problems = status_problems(report)
        if check and problems:
            raise click.ClickException("; ".join(problems))

    guard(run)


@secrets_group.command("rekey")
@data_dir_option
def secrets_rekey(data_dir: Path | None) -> None:
    """Reseal every secret under the current master key (after a master key change).

    Give the new key as BERKAS_MASTER_KEY (or the first line of the key file) and the old
    one as BERKAS_MASTER_KEY_PREVIOUS (or a later line); once this has run, the old key
    can be removed. Safe to repeat. Values found in clear are never sealed.
    """

    def run() -> None:
        with writing(data_dir) as services:
            vault = services.secrets
            done = vault.reseal()
            current = vault.master_key_ids[0]
            left = {
                kind: {kid: n for kid, n in counts.items() if kid != current}
                for kind, counts in vault.by_master_key().items()
            }
        resealed = ", ".join(f"{n} {kind}" for kind, n in done.items())
        click.echo(f"resealed under master key {current}: {resealed}")
        if any(left.values()):  # pragma: no cover - reseal covers every sealed column
            raise click.ClickException(f"still sealed with other keys: {left}")
        click.echo(
            "no secret needs an older master key now: remove it from every node and "
            "destroy it, so backups made before today can no longer be opened"
        )

    guard(run)


@secrets_group.command("seal-legacy")
@data_dir_option
def secrets_seal_legacy(data_dir: Path | None) -> None:
    """Seal the client secrets a berkas release before sealing stored in clear; once.

    Upgrading such a database lists them (schema 0008); this seals exactly those and
    refuses to run a second time. A clear value written since is never sealed: the
    server refuses to start, naming it.
    """

    def run() -> None:
        from berkas.wiring import seal_legacy

        settings = settings_from(data_dir=data_dir)
        show_where(settings)
        sealed = seal_legacy(settings)
        # Said on stderr, naming each client: this is the one time berkas seals a value
        # it did not write itself, and the operator's terminal or log keeps the record.
        click.echo(
            f"sealed the client secret keys of {', '.join(sealed)} under the master key",
            err=True,
        )
        click.echo(f"sealed {len(sealed)} client secret key(s) an older release stored in clear")

    guard(run)
