"""What every operator verb shares: ``--data-dir``, the settings, services to read or write
through, and the one place errors become a message and exit status 1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from berkas.core.errors import BerkasError
from berkas.core.wire import iso8601

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.
if TYPE_CHECKING:
    from berkas.config import Settings
    from berkas.services.bundle import Services


# The one --data-dir option, on serve and every admin verb: it wins over BERKAS_DATA_DIR
# (load_settings takes it as an override), so a command never has to guess the env.
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (env BERKAS_DATA_DIR, default ./berkas-data).",
)


@contextmanager
def reading(data_dir: Path | None) -> Iterator[Services]:
    """Services for a read-only verb: the data dir must exist; nothing is created."""
    from berkas.wiring import open_existing

    settings = settings_from(data_dir=data_dir)
    services = open_existing(settings)
    try:
        show_where(settings)
        yield services
    finally:
        services.close()


@contextmanager
def writing(data_dir: Path | None) -> Iterator[Services]:
    """Services for a verb that changes the data: prepares (never sweeps) the data dir."""
    from berkas.wiring import prepare

    settings = settings_from(data_dir=data_dir)
    new = not settings.data_dir.exists()
    # serving=False: beside a live server, whose uploads in flight must not be swept.
    # A fleet's admin command with no data dir creates none (wiring.datadir.needs_data_dir).
    services = prepare(settings, serving=False)
    try:
        if new and settings.data_dir.exists():
            click.echo(f"created a new berkas data dir at {settings.data_dir}", err=True)
        show_where(settings)
        yield services
    finally:
        services.close()


def show_where(settings: Settings) -> None:
    # On stderr, so --json output on stdout stays machine-readable. An operator with two
    # data dirs (or a forgotten BERKAS_DATABASE_URL) sees which one the verb acted on.
    from berkas.wiring import database_shown, uses_data_dir

    # A fleet's admin command without one says so (README "Admin on a fleet"), and names
    # the store too: it is all the command acted on.
    where = (
        str(settings.data_dir)
        if uses_data_dir(settings)
        else f"none (not needed)  store: {settings.resolved_storage_url}"
    )
    click.echo(f"data dir: {where}  database: {database_shown(settings)}", err=True)


def settings_from(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from berkas.config import explain, load_settings

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        # Refuse bad configuration at start, naming the variable, where it was set, the
        # value and what is expected (STYLE: refuse insecure configuration at start-up,
        # never at request time).
        lines = "".join(f"\n  {line}" for line in explain(exc, overrides))
        raise click.ClickException(f"invalid configuration:{lines}") from None
    except ValueError as exc:
        # One problem stays on the line; several (unknown names) get a line each.
        problems = str(exc).splitlines()
        if len(problems) == 1:
            raise click.ClickException(f"invalid configuration: {exc}") from None
        listed = "".join(f"\n  {problem}" for problem in problems)
        raise click.ClickException(f"invalid configuration:{listed}") from None


def guard(action: Callable[[], None]) -> None:
    try:
        action()
    except (BerkasError, ValueError, OSError) as exc:
        raise click.ClickException(describe(exc)) from None


def describe(exc: Exception) -> str:
    if isinstance(exc, BerkasError):
        return f"{exc.message} ({exc.code})"
    if isinstance(exc, OSError) and exc.filename is not None:
        return (
            f"{exc.filename}: {exc.strerror} "
            "(check --data-dir or BERKAS_DATA_DIR, and its permissions)"
        )
    return str(exc)


def iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso8601(value)
