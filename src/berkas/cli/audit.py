"""``berkas audit``: the audit trail as JSON lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from berkas.cli.common import data_dir_option, guard, reading
from berkas.core.wire import iso8601

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.


@click.group()
def audit() -> None:
    """The audit trail: every upload, link issued, opened or refused, deletion, expiry."""


@audit.command("export")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only events at or after WHEN: an ISO 8601 date or time (UTC unless it says), "
    "or a span back from now such as 90m, 24h or 30d.",
)
@click.option("--client", "client_id", metavar="CLIENT_ID", help="Only this partner's events.")
@data_dir_option
def audit_export(since: str | None, client_id: str | None, data_dir: Path | None) -> None:
    """Print audit events as JSON lines, oldest first, one object per event:
    id, file_id, client_id, kind, at, ip, user_agent, detail, request_id, actor."""

    def run() -> None:
        start = None if since is None else _moment(since)
        with reading(data_dir) as services:
            for event in services.files.export_events(since=start, client_id=client_id):
                record = {
                    "id": event.id,
                    "file_id": event.file_id,
                    "client_id": event.client_id,
                    "kind": event.kind.value,
                    "at": iso8601(event.at),
                    "ip": event.ip,
                    "user_agent": event.user_agent,
                    "detail": event.detail,
                    "request_id": event.request_id,
                    "actor": event.actor,
                }
                click.echo(json.dumps(record, ensure_ascii=False))

    guard(run)


_SPAN_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def _moment(text: str) -> datetime:
    """``--since``: an ISO 8601 date or time (naive means UTC), or ``<n>m|h|d`` ago."""
    value = text.strip()
    unit = _SPAN_UNITS.get(value[-1:].lower())
    if unit is not None and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{unit: int(value[:-1])})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither an ISO 8601 date or time (2026-11-01, "
            "2026-11-01T08:00:00+07:00) nor a span such as 24h or 30d",
            param_hint="--since",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
