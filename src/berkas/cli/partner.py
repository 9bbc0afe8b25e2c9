"""``berkas partner``: a partner's verbs (configure, token, requirements, upload, file,
download; delete, events and revoke-links from ``partner_lifecycle``) over the SDK;
options, client and output convention in ``partner_options``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from berkas.cli import partner_lifecycle
from berkas.cli.partner_options import (
    OUTPUT,
    PROFILE,
    REFUSED,
    USAGE,
    Failure,
    Options,
    common,
    connect,
    echo,
    reporting,
)
from berkas.cli.progress import human
from berkas.client import profiles
from berkas.client.models import DryRunResult, UploadedFile
from berkas.core.catalogue import BusinessType, Category, DocumentCode


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def partner() -> None:
    """Talk to a berkas server as a partner: token, requirements, upload, file, files,
    download, events, revoke-links, delete.

    Each setting comes from its flag, else its environment variable
    (BERKAS_CLIENT_BASE_URL, BERKAS_CLIENT_ID, BERKAS_CLIENT_SECRET), else the profile
    (--profile NAME, or 'default'; save one with 'berkas partner configure'). The
    token is kept (0600) beside the config file and reused by the next command until
    shortly before it expires; --no-token-cache or BERKAS_CLIENT_TOKEN_CACHE=off signs
    a new one each time.

    Results are JSON on stdout. Errors are 'code: message' on stderr, or JSON on stdout
    with --json. Exit codes: 0 done; 1 the server refused or could not be reached;
    2 bad or missing options or credentials; 3 refused locally before sending (file too
    large, output exists); 4 a download did not match its sha256.
    """


@partner.command()
@PROFILE
@click.option("--base-url", help="Server root, e.g. http://127.0.0.1:8000.")
@click.option("--client-id", help="Your Client-Id.")
@click.option("--secret-key", help="Your secret key (asked for, hidden, when not given).")
@OUTPUT[0]
@OUTPUT[1]
def configure(
    *,
    profile: str | None,
    base_url: str | None,
    client_id: str | None,
    secret_key: str | None,
    json_errors: bool,
    quiet: bool,
) -> None:
    """Save a profile (server, Client-Id, secret) to the config file, mode 0600.

    Asks for what the flags leave out; the secret is read without echo. Other
    profiles in the file are kept.
    """
    opts = Options(profile, base_url, client_id, secret_key, 30.0, json_errors, quiet)
    name = profile or profiles.DEFAULT_PROFILE
    path = profiles.config_path()
    with reporting(opts):
        current = profiles.read_profiles(path).get(name, {})
        try:
            base_url, client_id, secret_key = _ask(current, base_url, client_id, secret_key)
        except click.Abort:
            raise Failure(
                "configuration_invalid",
                "input ended before every value was given; pass --base-url, --client-id "
                "and --secret-key when there is no one to ask",
                type="usage_error",
                exit_code=USAGE,
            ) from None
        if not secret_key or not client_id or not base_url:
            raise Failure(
                "configuration_invalid",
                "base URL, Client-Id and secret key are all needed",
                type="usage_error",
                exit_code=USAGE,
            )
        profiles.save_profile(
            path, name, {"base_url": base_url, "client_id": client_id, "secret_key": secret_key}
        )
        echo({"profile": name, "path": str(path), "base_url": base_url, "client_id": client_id})


def _ask(
    current: dict[str, Any], base_url: str | None, client_id: str | None, secret_key: str | None
) -> tuple[str | None, str | None, str | None]:
    """Prompt (on stderr: stdout is for the result) for what the flags left out."""
    if base_url is None:
        base_url = click.prompt(
            "Server root",
            default=current.get("base_url", profiles.DEFAULT_BASE_URL),
            err=True,
        )
    if client_id is None:
        client_id = click.prompt("Client-Id", default=current.get("client_id"), err=True)
    if secret_key is None:
        kept = current.get("secret_key")
        entered: str = click.prompt(
            "Secret key" + (" (empty: keep the saved one)" if kept else ""),
            hide_input=True,
            default="" if kept else None,
            show_default=False,
            err=True,
        )
        secret_key = entered or kept
    return base_url, client_id, secret_key


@partner.command()
@common
@click.option("--valid-time", type=click.IntRange(min=1), help="Minutes the token lives.")
@click.option("--raw", is_flag=True, help="Print only the token, for $(...) in scripts.")
def token(opts: Options, *, valid_time: int | None, raw: bool) -> None:
    """Get a bearer token (POST /token, HMAC-signed) and print it with its expiry."""
    with connect(opts) as client:
        got = client.token(valid_time)
    if raw:
        click.echo(got.token)
    else:
        echo(got)


_LEGAL_ENTITIES = sorted({e for b in BusinessType for e in b.legal_entities})


@partner.command()
@common
@click.option(
    "--business-type",
    required=True,
    type=click.Choice([b.value for b in BusinessType], case_sensitive=False),
)
@click.option(
    "--legal-entity",
    required=True,
    type=click.Choice(_LEGAL_ENTITIES, case_sensitive=False),
    help="e.g. PERSEORANGAN, PT, CV.",
)
@click.option("--business-line", required=True, help="e.g. RETAIL, ONLINE_STORE.")
@click.option(
    "--nationality", default="ID", show_default=True, help="Contact's ISO 3166 alpha-2 code."
)
def requirements(
    opts: Options, *, business_type: str, legal_entity: str, business_line: str, nationality: str
) -> None:
    """Print which documents a merchant of this kind must provide (GET /file)."""
    with connect(opts) as client:
        echo(
            client.requirements(
                business_type.upper(),
                legal_entity.upper(),
                business_line.upper(),
                nationality.upper(),
            )
        )


@partner.command()
@common
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
@click.option(
    "--dry-run",
    is_flag=True,
    help="Run every check the server makes and print what would be stored (type, size, "
    "sha256, dimensions, metadata to strip, duplicate_of); store nothing. berkas only; "
    "--request-id is not used.",
)
@click.option(
    "--max-size",
    type=click.IntRange(min=1),
    metavar="MB",
    help="Refuse locally above this size (default: the requirement's max_size in "
    "berkas's catalogue; raise it if your server's catalogue allows more).",
)
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True)
)
def upload(
    opts: Options,
    *,
    category: str,
    code: str | None,
    url: str | None,
    filename: str | None,
    request_id: str | None,
    dry_run: bool,
    max_size: int | None,
    file: str | None,
) -> None:
    """Upload FILE (a path, or - for stdin) or --url as a document (POST /file).

    Prints the server's answer as JSON; at a terminal, stderr also notes the metadata
    stripped and an earlier file with the same bytes (not with --quiet). With --dry-run
    the JSON is what would be stored, with "dry_run": true.
    """
    if (file is None) == (url is None):
        raise click.UsageError("give exactly one of FILE and --url.")
    category, code = category.upper(), code.upper() if code else None
    if file is not None and file != "-":
        _check_size(Path(file), category, code, max_size)
    with connect(opts) as client:
        result: UploadedFile | DryRunResult
        if url is not None:
            if dry_run:
                result = client.check_url(category, url, code=code)
            else:
                result = client.upload_url(category, url, code=code, request_id=request_id)
            _report_upload(opts, result)
            return
        source: Path | IO[bytes] = sys.stdin.buffer if file == "-" else Path(str(file))
        verb = "check" if dry_run else "upload"
        bar = opts.progress(f"{verb} {'stdin' if file == '-' else Path(str(file)).name}")
        try:
            if dry_run:
                result = client.check(
                    category, source, code=code, filename=filename, on_progress=bar
                )
            else:
                result = client.upload(
                    category,
                    source,
                    code=code,
                    filename=filename,
                    request_id=request_id,
                    on_progress=bar,
                )
        except OSError as exc:  # the SDK opens FILE only when the request is sent
            raise Failure(
                "file_unreadable",
                f"cannot read {file}: {exc.strerror or exc}",
                type="usage_error",
                exit_code=USAGE,
            ) from None
        finally:
            bar.close()
        _report_upload(opts, result)


def _report_upload(opts: Options, result: UploadedFile | DryRunResult) -> None:
    """The answer as JSON on stdout; at a terminal, a line each for what a reader might
    miss in it."""
    dry_run = isinstance(result, DryRunResult)
    echo({"dry_run": True, **dataclasses.asdict(result)} if dry_run else result)
    if dry_run:
        opts.note("dry run: every check passed; nothing was stored")
    if result.metadata_removed:
        removed = ", ".join(result.metadata_removed)
        opts.note(f"metadata {'to remove' if dry_run else 'removed'} before storing: {removed}")
    if result.duplicate_of is not None:
        opts.note(
            f"duplicate of {result.duplicate_of}: same bytes in {result.category}"
            + (" (it would be stored all the same)" if dry_run else " (stored all the same)")
        )


def _check_size(path: Path, category: str, code: str | None, max_size: int | None) -> None:
    """Refuse a file over its cap before a byte is sent (the server would answer 413
    only after receiving up to the cap)."""
    from berkas.core.catalogue import MIB, Catalogue

    kind = Category(category)
    document = DocumentCode(code) if code and kind is Category.DOCUMENT else None
    label = Catalogue.label(kind, document)
    if max_size is None:
        max_size = Catalogue.load().requirement(kind, document).max_size
    size = path.stat().st_size
    if size > max_size * MIB:
        raise Failure(
            "file_too_large",
            f"{path.name} is {size:,} bytes ({human(size)}); {label} accepts at most "
            f"{max_size} MB ({max_size * MIB:,} bytes). "
            "Nothing was sent (--max-size raises the local cap if your server allows more).",
            type="invalid_request_error",
            exit_code=REFUSED,
        )


@partner.command("file")
@common
@click.argument("file_id")
def file_info(opts: Options, *, file_id: str) -> None:
    """Print a file's metadata and a fresh 60-minute link (GET /file/{id})."""
    with connect(opts) as client:
        echo(client.file(file_id))


@partner.command()
@common
@click.argument("id_or_link")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    help="Where to write the bytes (written whole or not at all); - for stdout.",
)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def download(opts: Options, *, id_or_link: str, output: Path, force: bool) -> None:
    """Save a file's bytes, given its id (needs credentials) or a link (needs none).

    By id, the bytes are checked against the sha256 the server reports; a mismatch
    keeps nothing and exits 4. Prints path, size, sha256 and whether it was verified
    (with -o -, the bytes go to stdout, and this and any error to stderr).
    """
    to_stdout = str(output) == "-"
    opts = dataclasses.replace(opts, stdout_taken=to_stdout)
    with reporting(opts):
        _download(opts, id_or_link, output, force=force, to_stdout=to_stdout)


def _download(
    opts: Options, id_or_link: str, output: Path, *, force: bool, to_stdout: bool
) -> None:
    if not to_stdout and output.exists() and not force:
        _refuse_existing(opts, output)
    if not to_stdout and not output.parent.is_dir():
        raise _unwritable(output, "its directory does not exist")
    by_link = id_or_link.startswith(("http://", "https://"))
    with connect(opts, credentials=not by_link) as client:
        link, expected = id_or_link, None
        if not by_link:
            info = client.file(id_or_link)
            link, expected = info.link, info.sha256
        bar = opts.progress(f"download {'stdout' if to_stdout else output.name}")
        sink = _Hashing(sys.stdout.buffer)
        try:
            if to_stdout:
                size = client.download_to(link, sink, sha256=expected, on_progress=bar)
                sys.stdout.buffer.flush()
            else:
                size = client.download_to(
                    link, output, sha256=expected, overwrite=force, on_progress=bar
                )
        except FileExistsError:
            _refuse_existing(opts, output)
        except OSError as exc:
            raise _unwritable(output, exc.strerror or str(exc)) from None
        finally:
            bar.close()
    sha256 = expected or (sink.hexdigest() if to_stdout else _sha256_of(output))
    result = {
        "path": "-" if to_stdout else str(output),
        "size": size,
        "sha256": sha256,
        "verified": expected is not None,
    }
    if to_stdout:
        if not opts.quiet:
            click.echo(json.dumps(result), err=True)
    else:
        echo(result)


def _unwritable(output: Path, why: str) -> Failure:
    return Failure(
        "output_unwritable", f"cannot write {output}: {why}", type="usage_error", exit_code=USAGE
    )


def _refuse_existing(opts: Options, output: Path) -> NoReturn:
    Failure(
        "output_exists",
        f"{output} exists; pass --force to replace it",
        type="usage_error",
        exit_code=REFUSED,
    ).report(opts)


class _Hashing:
    """A stream sink that keeps the running sha256 of what passed (for -o -)."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self._digest = hashlib.sha256()

    def write(self, chunk: bytes) -> int:
        self._digest.update(chunk)
        return self._sink.write(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@partner.command("files")
@common
@click.option(
    "--category",
    type=click.Choice([c.value for c in Category], case_sensitive=False),
    help="Only files of this category.",
)
@click.option("--code", metavar="CODE", help="Only DOCUMENT files with this code (e.g. KTP).")
@click.option(
    "--created-gte",
    metavar="TIME",
    help="Only files created at or after TIME: 2026-12-07T08:45:42Z (as created_at shows "
    "it) or a date.",
)
@click.option("--created-lt", metavar="TIME", help="Only files created before TIME.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    help="Show at most N files (default: every one, following the pages).",
)
def files_list(
    opts: Options,
    *,
    category: str | None,
    code: str | None,
    created_gte: str | None,
    created_lt: str | None,
    limit: int | None,
) -> None:
    """List your files, newest first (GET /files), following the pages.

    A table; with --json, a JSON array of the files (as GET /file/{id} shows each,
    without a link). Deleted files are not listed.
    """
    from itertools import islice

    with connect(opts) as client:
        listed = client.list_files(
            category=category.upper() if category else None,
            code=code.upper() if code else None,
            created_gte=created_gte,
            created_lt=created_lt,
            page_size=min(limit or 100, 100),
        )
        found = list(islice(listed, limit))
    if opts.json_errors:
        echo([dataclasses.asdict(f) for f in found])
        return
    if not found:
        opts.note("no files match")
        return
    from berkas.cli.tables import NONE, moment, table

    rows = [
        (f.id, f.category, f.code or NONE, f.content_type, str(f.size), moment(f.created_at))
        for f in found
    ]
    click.echo(table(("ID", "CATEGORY", "CODE", "TYPE", "SIZE", "CREATED"), rows))


for _verb in (partner_lifecycle.events, partner_lifecycle.revoke_links, partner_lifecycle.delete):
    partner.add_command(_verb)
