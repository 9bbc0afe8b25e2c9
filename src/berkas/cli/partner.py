"""``berkas partner``: a partner's verbs (token, requirements, upload, file, download) via the SDK.

Each prints JSON on stdout; an API error prints ``code: message`` on stderr and exits 1.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from berkas.core.catalogue import BusinessType, Category, DocumentCode
from berkas.core.wire import iso8601

if TYPE_CHECKING:
    from berkas.client import BerkasClient

F = TypeVar("F", bound=Callable[..., Any])


def _credentials(command: F) -> F:
    """The connection options every partner verb takes (flag or environment)."""
    options = [
        click.option(
            "--base-url",
            envvar="BERKAS_CLIENT_BASE_URL",
            show_envvar=True,
            default="http://127.0.0.1:8000",
            show_default=True,
            help="The berkas (or DOKU) server root.",
        ),
        click.option(
            "--client-id",
            envvar="BERKAS_CLIENT_ID",
            show_envvar=True,
            required=True,
            help="Your Client-Id, e.g. BRN-0001-10791114622547.",
        ),
        click.option(
            "--secret-key",
            envvar="BERKAS_CLIENT_SECRET",
            show_envvar=True,
            required=True,
            # Prefer the environment: a flag's value is visible to other local users
            # in the process list.
            help="Your secret key (prefer the environment variable).",
        ),
        click.option(
            "--timeout", type=float, default=30.0, show_default=True, help="Seconds per try."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@contextmanager
def _client(
    base_url: str, client_id: str, secret_key: str, timeout: float
) -> Iterator[BerkasClient]:
    """An SDK client; API and connection errors become ``code: message`` and exit 1."""
    from berkas.client import BerkasAPIError, BerkasClient, ConnectionFailed

    try:
        with BerkasClient(base_url, client_id, secret_key, timeout=timeout) as client:
            yield client
    except (BerkasAPIError, ConnectionFailed) as exc:
        click.echo(f"{exc.code}: {exc.message}", err=True)
        sys.exit(1)


def _echo(value: Any) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    click.echo(json.dumps(value, indent=2, default=_jsonable))


def _jsonable(value: object) -> str:
    if isinstance(value, datetime):
        return iso8601(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@click.group()
def partner() -> None:
    """Talk to a berkas server as a partner: token, requirements, upload, file, download.

    Credentials come from --client-id/--secret-key or BERKAS_CLIENT_ID and
    BERKAS_CLIENT_SECRET; the server from --base-url or BERKAS_CLIENT_BASE_URL.
    """


@partner.command()
@_credentials
@click.option("--valid-time", type=click.IntRange(min=1), help="Minutes the token lives.")
def token(
    *, base_url: str, client_id: str, secret_key: str, timeout: float, valid_time: int | None
) -> None:
    """Get a bearer token (POST /token, HMAC-signed) and print it with its expiry."""
    with _client(base_url, client_id, secret_key, timeout) as client:
        _echo(client.token(valid_time))


@partner.command()
@_credentials
@click.option(
    "--business-type",
    required=True,
    type=click.Choice([b.value for b in BusinessType], case_sensitive=False),
)
@click.option("--legal-entity", required=True, help="e.g. PERSEORANGAN, PT, CV.")
@click.option("--business-line", required=True, help="e.g. RETAIL, ONLINE_STORE.")
@click.option(
    "--nationality", default="ID", show_default=True, help="Contact's ISO 3166 alpha-2 code."
)
def requirements(
    *,
    base_url: str,
    client_id: str,
    secret_key: str,
    timeout: float,
    business_type: str,
    legal_entity: str,
    business_line: str,
    nationality: str,
) -> None:
    """Print which documents a merchant of this kind must provide (GET /file)."""
    with _client(base_url, client_id, secret_key, timeout) as client:
        _echo(
            client.requirements(
                business_type.upper(), legal_entity, business_line, nationality.upper()
            )
        )


@partner.command()
@_credentials
@click.option(
    "--category",
    required=True,
    type=click.Choice([c.value for c in Category], case_sensitive=False),
)
@click.option(
    "--code",
    type=click.Choice([c.value for c in DocumentCode], case_sensitive=False),
    help="Document code; required for DOCUMENT (e.g. KTP).",
)
@click.option("--url", help="Have the server fetch this http(s) URL instead of sending FILE.")
@click.option("--filename", help="Name sent for the file (default: FILE's name).")
@click.option("--request-id", help="Makes the upload idempotent: a retry stores it once.")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
def upload(
    *,
    base_url: str,
    client_id: str,
    secret_key: str,
    timeout: float,
    category: str,
    code: str | None,
    url: str | None,
    filename: str | None,
    request_id: str | None,
    file: str | None,
) -> None:
    """Upload FILE (a path, or - for stdin) or --url as a document (POST /file)."""
    if (file is None) == (url is None):
        raise click.UsageError("give exactly one of FILE and --url.")
    category, code = category.upper(), code.upper() if code else None
    with _client(base_url, client_id, secret_key, timeout) as client:
        if url is not None:
            _echo(client.upload_url(category, url, code=code, request_id=request_id))
            return
        source = sys.stdin.buffer if file == "-" else Path(str(file))
        _echo(client.upload(category, source, code=code, filename=filename, request_id=request_id))


@partner.command("file")
@_credentials
@click.argument("file_id")
def file_info(
    *, base_url: str, client_id: str, secret_key: str, timeout: float, file_id: str
) -> None:
    """Print a file's metadata and a fresh 60-minute link (GET /file/{id})."""
    with _client(base_url, client_id, secret_key, timeout) as client:
        _echo(client.file(file_id))


@partner.command()
@_credentials
@click.argument("id_or_link")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the bytes (written whole or not at all).",
)
def download(
    *, base_url: str, client_id: str, secret_key: str, timeout: float, id_or_link: str, output: Path
) -> None:
    """Save a file's bytes, given its id or a link."""
    with _client(base_url, client_id, secret_key, timeout) as client:
        link = id_or_link
        if not id_or_link.startswith(("http://", "https://")):
            link = client.file(id_or_link).link
        size = client.download_to(link, output)
        _echo({"path": str(output), "size": size})
