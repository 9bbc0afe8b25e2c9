"""``berkas files``: the operator's hold, release and delete of any partner's document, and
the upgrade of documents an older release stored."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from berkas.cli.common import (
    data_dir_option,
    guard,
    iso_or_none,
    reading,
    settings_from,
    show_where,
    writing,
)
from berkas.core.catalogue_types import Category
from berkas.core.models import Caller, StoredFile
from berkas.core.wire import iso8601

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.


@click.group()
def files() -> None:
    """Stored documents: list, show, delete, hold, release, upgrade."""


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


def _filter_options(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option("--client", "client_id", metavar="ID", help="Only this client's files."),
            click.option(
                "--category",
                type=click.Choice([c.value for c in Category], case_sensitive=False),
                help="Only files of this category.",
            ),
            click.option("--code", metavar="CODE", help="Only DOCUMENT files with this code."),
            click.option(
                "--created-gte",
                metavar="TIME",
                help="Only files created at or after TIME (2026-12-07T08:45:42Z, or a date).",
            ),
            click.option("--created-lt", metavar="TIME", help="Only files created before TIME."),
        ]
    ):
        command = option(command)
    return command


@files.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="Show at most N files.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@data_dir_option
def files_list(
    *,
    client_id: str | None,
    category: str | None,
    code: str | None,
    created_gte: str | None,
    created_lt: str | None,
    limit: int | None,
    as_json: bool,
    data_dir: Path | None,
) -> None:
    """List stored files of every client (or --client's), newest first, as a table.
    Deleted files are not listed; `berkas files show ID` tells what became of one."""

    def run() -> None:
        from itertools import islice

        from berkas.cli.tables import NONE, moment, table
        from berkas.core.listing import parse_query

        # Read as GET /files reads its query: the same checks and messages.
        given = {
            "category": category.upper() if category else None,
            "code": code,
            "created_gte": created_gte,
            "created_lt": created_lt,
        }
        match = parse_query({k: [v] for k, v in given.items() if v is not None}).filter
        with reading(data_dir) as services:
            found = list(islice(services.files.list_any(client_id, match), limit))
        if as_json:
            click.echo(json.dumps([_row(stored) for stored in found]))
            return
        if not found:
            click.echo("no files match", err=True)
            return
        headers = ("ID", "CLIENT", "CATEGORY", "CODE", "SIZE", "CREATED", "HOLD")
        cells = [
            (
                s.id,
                s.client_id,
                s.category,
                s.code or NONE,
                str(s.size),
                moment(s.created_at),
                "held" if s.legal_hold else NONE,
            )
            for s in found
        ]
        click.echo(table(headers, cells))

    guard(run)


@files.command("show")
@click.argument("file_id")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@data_dir_option
def files_show(file_id: str, as_json: bool, data_dir: Path | None) -> None:
    """Show one file of any client: owner, state (stored or deleted), legal hold,
    retention, size, type, key, encryption, and its audit trail's events."""

    def run() -> None:
        with reading(data_dir) as services:
            stored, trail = services.files.inspect(file_id)
        shown: dict[str, Any] = {"id": file_id}
        if stored is not None:
            shown |= {"state": "stored", **_row(stored)}
        else:
            gone = trail[-1]
            shown |= {
                "state": "deleted",
                "client_id": gone.client_id,
                "deleted_at": iso8601(gone.at),
                "deleted_by": gone.detail or gone.kind.value,
            }
        shown["events"] = [
            {"kind": e.kind.value, "at": iso8601(e.at), "detail": e.detail, "actor": e.actor}
            for e in trail
        ]
        if as_json:
            click.echo(json.dumps(shown))
            return
        for name, value in shown.items():
            if name != "events":
                click.echo(f"{name + ':':<18}{'-' if value is None else value}")
        click.echo("events:")
        for e in shown["events"]:
            extra = "".join(f" {v}" for v in (e["detail"], e["actor"]) if v)
            click.echo(f"  {e['at']}  {e['kind']}{extra}")

    guard(run)


def _row(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "client_id": stored.client_id,
        "category": stored.category,
        "code": stored.code,
        "content_type": stored.content_type,
        "size": stored.size,
        "sha256": stored.sha256,
        "width": stored.width,
        "height": stored.height,
        "created_at": iso8601(stored.created_at),
        "retained_until": iso_or_none(stored.retained_until),
        "legal_hold": stored.legal_hold,
        "encrypted": stored.data_key is not None,
        "link_generation": stored.link_generation,
        "metadata_removed": list(stored.metadata_removed),
        "key": stored.key,
    }
