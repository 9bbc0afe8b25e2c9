"""What every ``berkas partner`` verb shares: its options (connection, ``--profile``,
``--json``, ``--quiet``), the SDK client they resolve to (flags > environment > profile),
and the output convention: results as JSON on stdout, errors as ``code: message`` (and a
``hint:``) on stderr or, with ``--json``, as JSON; exit codes in ``EXIT_CODES``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click

from berkas.cli.progress import Progress, note
from berkas.client import profiles
from berkas.core.catalogue import did_you_mean
from berkas.core.wire import iso8601

if TYPE_CHECKING:
    from berkas.client import BerkasClient

F = TypeVar("F", bound=Callable[..., Any])

OK, API_ERROR, USAGE, REFUSED, CORRUPT = 0, 1, 2, 3, 4
EXIT_CODES = {
    OK: "done",
    API_ERROR: "the server refused the request, or could not be reached",
    USAGE: "bad or missing options, credentials, profile or config file; -o unwritable",
    REFUSED: "refused locally before sending: file over its size cap, output file exists",
    CORRUPT: "the downloaded bytes do not match the sha256 the server reported",
}
WRONG_KEY_HINT = (
    "check BERKAS_CLIENT_SECRET (or the profile) and that the server's data dir is the "
    "one the client was created in"
)
ROOT_HINT = "use the server root, e.g. http://host:8000"


@dataclass(frozen=True, slots=True)
class Options:
    """The options every partner verb takes."""

    profile: str | None
    base_url: str | None
    client_id: str | None
    secret_key: str | None
    timeout: float
    json_errors: bool
    quiet: bool
    # With -o - stdout carries the file's bytes: a JSON error then goes to stderr.
    stdout_taken: bool = False
    # Keep the token in the profile's directory for the next command (--no-token-cache).
    token_cache: bool = True

    def progress(self, label: str) -> Progress:
        """A progress bar on stderr: drawn on a terminal, never with ``--quiet``."""
        return Progress(label, enabled=False if self.quiet else None)

    def note(self, line: str) -> None:
        """A line on stderr for a person, on the bar's terms (a terminal, no ``--quiet``):
        scripts read the JSON on stdout, and their stderr carries only errors."""
        note(line, enabled=False if self.quiet else None)


class Failure(Exception):
    """An error to report in the CLI's convention, then exit with ``exit_code``."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        type: str,
        exit_code: int,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.type = code, message, type
        self.exit_code, self.status, self.hint = exit_code, status, hint

    def report(self, opts: Options) -> NoReturn:
        if opts.json_errors:
            error = {
                "code": self.code,
                "message": self.message,
                "type": self.type,
                "status": self.status,
                "hint": self.hint,
            }
            click.echo(json.dumps({"error": error}, indent=2), err=opts.stdout_taken)
        else:
            click.echo(f"{self.code}: {self.message}", err=True)
            if self.hint:
                click.echo(f"hint: {self.hint}", err=True)
        sys.exit(self.exit_code)


def _profile_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    try:
        names = profiles.read_profiles(profiles.config_path())
    except Exception:  # completion must never print a traceback
        return []
    return [name for name in sorted(names) if name.startswith(incomplete)]


PROFILE = click.option(
    "--profile",
    metavar="NAME",
    shell_complete=_profile_names,
    help="Profile in ~/.config/berkas/config.toml (default: 'default', if saved).",
)
OUTPUT = [
    click.option(
        "--json",
        "json_errors",
        is_flag=True,
        help="Print errors as JSON on stdout too (results always are).",
    ),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar or notes."),
]


def common(command: F) -> F:
    """Add the connection and output options; the command gets ``opts: Options``."""

    @functools.wraps(command)
    def wrapper(
        *,
        profile: str | None,
        base_url: str | None,
        client_id: str | None,
        secret_key: str | None,
        timeout: float,
        json_errors: bool,
        quiet: bool,
        no_token_cache: bool,
        **kwargs: Any,
    ) -> Any:
        opts = Options(
            profile,
            base_url,
            client_id,
            secret_key,
            timeout,
            json_errors,
            quiet,
            token_cache=not no_token_cache and profiles.token_cache_enabled(),
        )
        with reporting(opts):
            return command(opts, **kwargs)

    options = [
        PROFILE,
        click.option(
            "--base-url",
            help="Server root [env BERKAS_CLIENT_BASE_URL; default http://127.0.0.1:8000].",
        ),
        click.option(
            "--client-id", help="Your Client-Id, e.g. BRN-0001-... [env BERKAS_CLIENT_ID]."
        ),
        click.option(
            "--secret-key",
            # Prefer the environment or a profile: a flag's value is visible to other
            # local users in the process list.
            help="Your secret key [env BERKAS_CLIENT_SECRET; prefer it, or a profile].",
        ),
        click.option(
            "--timeout", type=float, default=30.0, show_default=True, help="Seconds per try."
        ),
        click.option(
            "--no-token-cache",
            is_flag=True,
            help="Sign a new token rather than reuse the one kept (0600) beside the config "
            "file until shortly before it expires [env BERKAS_CLIENT_TOKEN_CACHE=off].",
        ),
        *OUTPUT,
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    for param in getattr(decorated, "__click_params__", ()):
        if isinstance(param.type, click.Choice) and not isinstance(param.type, Typed):
            param.type = Typed(param.type.choices)
            if len(param.type.choices) > Typed.LISTED:
                param.metavar = param.name.upper() if param.name else None
                param.help = f"{param.help or ''} {param.type.summary()}".strip()
    return decorated  # type: ignore[no-any-return]


_WHICH = "'berkas partner requirements' lists which a merchant needs."


class Typed(click.Choice[str]):
    """A choice shown in help as people type it, upper case (click 8.2 shows a
    case-insensitive choice casefolded: ``ktp``), and matched in any case. ``common``
    gives every partner verb's choices this type; past ``LISTED`` values the help names
    a few and the count (36 document codes in the option's column were 900 characters)."""

    LISTED = 12
    SHOWN = 4

    def __init__(self, choices: Sequence[Any]) -> None:
        super().__init__([str(c) for c in choices], case_sensitive=False)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        if len(self.choices) > self.LISTED:
            return None  # the option's metavar (CODE) and the summary in its help
        return "[" + "|".join(str(c) for c in self.choices) + "]"

    def summary(self) -> str:
        """The help's short form of a long list: the count and where to look."""
        return f"One of {len(self.choices)} codes, in any case; {_WHICH}"

    def get_invalid_choice_message(self, value: Any, ctx: click.Context | None) -> str:
        """Refused, with the nearest choices as the SDK and the server name them ("Did
        you mean KTP?", ``core.catalogue.did_you_mean``)."""
        choices = [str(c) for c in self.choices]
        hint = did_you_mean(str(value), choices)
        guess = f" {hint[:1].upper()}{hint[1:]}" if hint else ""
        if len(choices) <= self.LISTED:
            return f"{value!r} is not one of {', '.join(choices)}.{guess}"
        return f"{value!r} is not one of the {len(choices)} codes.{guess} {_WHICH}"


@contextmanager
def reporting(opts: Options) -> Iterator[None]:
    """SDK and local errors become the CLI's error output and exit code."""
    from berkas.client import (
        AuthenticationError,
        BerkasAPIError,
        ChecksumMismatch,
        ConfigurationError,
        ConnectionFailed,
    )

    try:
        yield
    except Failure as failure:
        failure.report(opts)
    except BerkasAPIError as exc:
        hint = None
        if isinstance(exc, AuthenticationError) and exc.code == "signature_invalid":
            hint = WRONG_KEY_HINT
        elif _has_path(opts):
            hint = f"--base-url has a path ({urlsplit(opts.base_url or '').path}); {ROOT_HINT}"
        Failure(
            exc.code, exc.message, type=exc.type, status=exc.status, exit_code=API_ERROR, hint=hint
        ).report(opts)
    except ConnectionFailed as exc:
        Failure(exc.code, exc.message, type="connection_error", exit_code=API_ERROR).report(opts)
    except ChecksumMismatch as exc:
        Failure(exc.code, exc.message, type="integrity_error", exit_code=CORRUPT).report(opts)
    except ConfigurationError as exc:
        Failure(exc.code, exc.message, type="usage_error", exit_code=USAGE).report(opts)


def _has_path(opts: Options) -> bool:
    return urlsplit(opts.base_url or "").path not in ("", "/")


def new_client(
    base_url: str,
    client_id: str,
    secret_key: str,
    timeout: float,
    *,
    token_cache: Path | None = None,
) -> BerkasClient:
    """The one place the CLI builds an SDK client (tests replace it to add a transport)."""
    from berkas.client import BerkasClient

    return BerkasClient(base_url, client_id, secret_key, timeout=timeout, token_cache=token_cache)


@contextmanager
def connect(opts: Options, *, credentials: bool = True) -> Iterator[BerkasClient]:
    """An SDK client from flags > environment > profile; ``credentials=False`` for a
    verb that needs none (downloading a link)."""
    found = profiles.resolve(
        flags={
            "base_url": opts.base_url,
            "client_id": opts.client_id,
            "secret_key": opts.secret_key,
        },
        profile=opts.profile,
    )
    resolved = dataclasses.replace(opts, base_url=found.base_url)
    if credentials:
        for flag, variable, value in (
            ("--client-id", profiles.ENV_CLIENT_ID, found.client_id),
            ("--secret-key", profiles.ENV_SECRET_KEY, found.secret_key),
        ):
            if not value:
                raise Failure(
                    "credentials_missing",
                    f"no {flag}: pass it, set {variable}, or save a profile with "
                    "'berkas partner configure'",
                    type="usage_error",
                    exit_code=USAGE,
                )
    # Each command is a process of its own: without the cache each would sign a token.
    cache = profiles.token_cache_path(found) if credentials and opts.token_cache else None
    with (
        reporting(resolved),
        new_client(
            found.base_url,
            found.client_id or "",
            found.secret_key or "",
            opts.timeout,
            token_cache=cache,
        ) as client,
    ):
        yield client


def echo(value: Any) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    click.echo(json.dumps(value, indent=2, default=_jsonable))


def _jsonable(value: object) -> str:
    if isinstance(value, datetime):
        return iso8601(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
