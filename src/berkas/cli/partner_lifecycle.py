"""``berkas partner delete | events | revoke-links``: a stored file's lifecycle from the
partner's side (docs/design.md 6.1-6.3), over the SDK. ``partner`` adds them to its group.
"""

from __future__ import annotations

import click

from berkas.cli.partner_options import Options, common, connect, echo


@click.command()
@common
@click.argument("file_id")
def delete(opts: Options, *, file_id: str) -> None:
    """Delete a file, its bytes and its links (DELETE /file/{id}).

    Deleting it again is not an error; a file on legal hold is refused (file_on_hold).
    Prints {"id": ..., "deleted": true}; the audit trail ('events') stays readable.
    """
    with connect(opts) as client:
        client.delete(file_id)
    echo({"id": file_id, "deleted": True})


@click.command()
@common
@click.argument("file_id")
def events(opts: Options, *, file_id: str) -> None:
    """Print a file's audit trail, oldest first (GET /file/{id}/events).

    Uploads, links issued, opened and refused, revocations, deletion: each with its
    time, the caller's address and user agent, and the request id of its log line.
    """
    with connect(opts) as client:
        echo(client.events(file_id))


@click.command("revoke-links")
@common
@click.argument("file_id")
def revoke_links(opts: Options, *, file_id: str) -> None:
    """Make every link issued so far stop working (POST /file/{id}/links/revoke).

    Prints the file's metadata with a fresh link, the only one that works. A presigned
    link (BERKAS_LINK_MODE=presigned) cannot be recalled: it lives out its time.
    """
    with connect(opts) as client:
        echo(client.revoke_links(file_id))
