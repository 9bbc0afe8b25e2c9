"""``berkas files``: the operator's hold, release and delete of any partner's document, and
the upgrade of documents an older release stored."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click

from berkas.cli.common import data_dir_option, guard, settings_from, show_where, writing
from berkas.core.models import Caller

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.


@click.group()
def files() -> None:
    """Stored documents: delete, hold, release, upgrade."""


def _operator() -> str:
    # Who ran the command, for the audit trail: the login name the OS reports (LOGNAME,
    # USER, or the password database), as `last` and sudo's log would name them.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


actor_option = click.option(
    "--actor",
    metavar="WHO",
    default=_operator,
    show_default="the OS user running the command",
    help="Who acts, as the audit trail records it (e.g. a ticket or a person's name).",
)


@files.command("delete")
@click.argument("file_id")
@actor_option
@data_dir_option
def files_delete(file_id: str, actor: str, data_dir: Path | None) -> None:
    """Delete any partner's file: its row, its bytes and every link (audited as the
    operator's, naming the actor). Refused while the file is on legal hold. Run against
    the same database and store as the servers."""

    def run() -> None:
        with writing(data_dir) as services:
            stored = services.files.delete_any(file_id, Caller(actor=actor))
        click.echo(f"{stored.id} deleted (client {stored.client_id}, {stored.size} bytes)")

    guard(run)


@files.command("hold")
@click.argument("file_id")
@actor_option
@data_dir_option
def files_hold(file_id: str, actor: str, data_dir: Path | None) -> None:
    """Put a file on legal hold: nothing deletes it (its partner, the operator, retention)
    until released."""
    guard(lambda: _set_hold(data_dir, file_id, True, actor))


@files.command("release")
@click.argument("file_id")
@actor_option
@data_dir_option
def files_release(file_id: str, actor: str, data_dir: Path | None) -> None:
    """Lift a legal hold: deletion and retention apply again (at once if it has passed)."""
    guard(lambda: _set_hold(data_dir, file_id, False, actor))


@files.command("upgrade")
@click.option(
    "--strip",
    is_flag=True,
    help="Also strip metadata (EXIF, GPS, ...) from images stored before stripping "
    "existed. This changes their bytes and sha256, which a partner may have recorded.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Rewrite or check at most N documents this run (retention is stamped in full).",
)
@actor_option
@data_dir_option
def files_upgrade(strip: bool, limit: int | None, actor: str, data_dir: Path | None) -> None:
    """Bring documents an older release stored up to date: stamp the retention their
    category has from their upload time, encrypt those stored in clear (when encryption
    at rest is on) and, with --strip, strip their metadata. Safe beside live servers and
    to repeat: what is done is skipped. Links issued before to a rewritten document stop
    working; GET /file gives a fresh one with the same bytes."""

    def run() -> None:
        from berkas.cli.progress import Progress
        from berkas.wiring import upgrading

        settings = settings_from(data_dir=data_dir)
        with upgrading(settings) as upgrade:
            show_where(settings)
            # On a terminal only: a pipe gets the summary on stdout and errors on stderr.
            bar = Progress("upgrading documents", show=str)
            try:
                report = upgrade.run(strip=strip, limit=limit, progress=bar, actor=actor)
            finally:
                bar.close()
        click.echo(report.summary())
        if report.failed:
            named = "; ".join(f"{file_id}: {why}" for file_id, why in report.failed)
            raise click.ClickException(
                f"{len(report.failed)} document(s) not upgraded, each left as it was "
                f"(run again once the cause is fixed): {named}"
            )

    guard(run)


def _set_hold(data_dir: Path | None, file_id: str, hold: bool, actor: str) -> None:
    with writing(data_dir) as services:
        stored = services.files.set_hold(file_id, hold, Caller(actor=actor))
    click.echo(f"{stored.id} {'on legal hold' if hold else 'released from legal hold'}")
