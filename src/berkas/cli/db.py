"""``berkas db`` and ``berkas storage``: schema migrations and the blob store's set-up."""

from __future__ import annotations

from pathlib import Path

import click

from berkas.cli.common import data_dir_option, guard, settings_from, writing

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.


@click.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@data_dir_option
def db_migrate(data_dir: Path | None) -> None:
    """Apply pending migrations (also done at every start)."""

    def run() -> None:
        with writing(data_dir):
            pass
        click.echo("database is up to date")

    guard(run)


@click.group()
def storage() -> None:
    """Blob storage (BERKAS_STORAGE_URL)."""


@storage.command("init")
@data_dir_option
def storage_init(data_dir: Path | None) -> None:
    """Create the S3 bucket (or the storage directory) if missing; safe to repeat."""

    def run() -> None:
        from berkas.wiring import init_storage

        # No data dir is prepared: on a fleet this runs once, from anywhere, before the
        # first node starts (which refuses to start without the bucket).
        click.echo(init_storage(settings_from(data_dir=data_dir)))

    guard(run)
