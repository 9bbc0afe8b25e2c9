"""The ``berkas`` command: serve, clients, keys, secrets, db, storage (the ``server``
extra), and the partner verbs (``berkas partner``, the SDK alone)."""

from __future__ import annotations

import contextlib
import getpass
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from berkas import __version__
from berkas.cli.partner import partner
from berkas.cli.samples import samples
from berkas.cli.server_extra import BerkasGroup
from berkas.core.errors import BerkasError
from berkas.core.models import Caller
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
def _reading(data_dir: Path | None) -> Iterator[Services]:
    """Services for a read-only verb: the data dir must exist; nothing is created."""
    from berkas.wiring import open_existing

    settings = _settings(data_dir=data_dir)
    services = open_existing(settings)
    try:
        _show_where(settings)
        yield services
    finally:
        services.close()


@contextmanager
def _writing(data_dir: Path | None) -> Iterator[Services]:
    """Services for a verb that changes the data: prepares (never sweeps) the data dir."""
    from berkas.wiring import prepare

    settings = _settings(data_dir=data_dir)
    new = not settings.data_dir.exists()
    # serving=False: beside a live server, whose uploads in flight must not be swept.
    services = prepare(settings, serving=False)
    try:
        if new:
            click.echo(f"created a new berkas data dir at {settings.data_dir}", err=True)
        _show_where(settings)
        yield services
    finally:
        services.close()


def _show_where(settings: Settings) -> None:
    # On stderr, so --json output on stdout stays machine-readable. An operator with two
    # data dirs (or a forgotten BERKAS_DATABASE_URL) sees which one the verb acted on.
    from berkas.wiring import database_shown

    click.echo(f"data dir: {settings.data_dir}  database: {database_shown(settings)}", err=True)


def _settings(**overrides: Any) -> Settings:
    from pydantic import ValidationError

    from berkas.config import load_settings

    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        # Refuse bad configuration at start, naming the variable (STYLE: refuse insecure
        # configuration at start-up, never at request time).
        lines = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            name = "BERKAS_" + "_".join(str(p) for p in error["loc"]).upper()
            if error["loc"] and not message.startswith(name):
                lines.append(f"  {name}: {message}")
            else:  # the message names the variable(s) itself
                lines.append(f"  {message}")
        raise click.ClickException("invalid configuration:\n" + "\n".join(lines)) from None
    except ValueError as exc:
        # One problem stays on the line; several (unknown names) get a line each.
        problems = str(exc).splitlines()
        if len(problems) == 1:
            raise click.ClickException(f"invalid configuration: {exc}") from None
        listed = "".join(f"\n  {problem}" for problem in problems)
        raise click.ClickException(f"invalid configuration:{listed}") from None


def _guard(action: Callable[[], None]) -> None:
    try:
        action()
    except (BerkasError, ValueError, OSError) as exc:
        raise click.ClickException(_describe(exc)) from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, BerkasError):
        return f"{exc.message} ({exc.code})"
    if isinstance(exc, OSError) and exc.filename is not None:
        return (
            f"{exc.filename}: {exc.strerror} "
            "(check --data-dir or BERKAS_DATA_DIR, and its permissions)"
        )
    return str(exc)


@click.group(cls=BerkasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="berkas")
def main() -> None:
    """berkas: KYC document intake speaking DOKU's Partner file API."""


@main.command()
@click.option(
    "--host", default=None, help="Interface to bind (env BERKAS_HOST, default 127.0.0.1)."
)
@click.option("--port", type=int, default=None, help="Port (env BERKAS_PORT, default 8000).")
@data_dir_option
def serve(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Run the HTTP service (embedded SQLite + local disk unless configured otherwise).

    One server per data dir: a second serve on it refuses to start.
    """
    import uvicorn

    from berkas.api import observe
    from berkas.api.app import create_app
    from berkas.api.connections import ConnectionLimits, guarded_protocol
    from berkas.wiring import (
        CannotListen,
        DataDirInUse,
        ensure_demo_client,
        listen,
        listen_metrics,
        lock_data_dir,
        prepare,
    )

    settings = _settings(host=host, port=port, data_dir=data_dir)
    log_config = observe.configure(settings.log_level, settings.log_format)
    # The port first: a taken (or mistyped) port is refused before the data dir is
    # touched, and "serving on" below is only ever printed for a port we hold.
    try:
        sock = listen(settings)
    except CannotListen as exc:
        raise click.ClickException(str(exc)) from None
    try:
        metrics_sock = listen_metrics(settings)
    except CannotListen as exc:
        sock.close()
        raise click.ClickException(f"{exc} (the metrics listener: BERKAS_METRICS_PORT)") from None
    sockets = [sock] if metrics_sock is None else [sock, metrics_sock]
    with contextlib.ExitStack() as bound:
        for each in sockets:
            bound.enter_context(closing(each))
        # Then the data dir's lock, held until this process exits: a second serve would
        # sweep this one's spool (its uploads in flight) as a crash's leftovers.
        try:
            lock = lock_data_dir(settings)
        except DataDirInUse as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"cannot start: {_describe(exc)}") from None
        with lock:
            try:
                container = prepare(settings, serving=True)
            except (BerkasError, ValueError, OSError) as exc:
                raise click.ClickException(f"cannot start: {_describe(exc)}") from None
            try:
                demo = ensure_demo_client(container, settings)
                if demo is not None:
                    _print_demo(settings, demo.client_id, demo.secret_key)
                click.echo(
                    f"berkas {__version__} serving on {settings.base_url} "
                    f"(data: {settings.data_dir})"
                )
                metrics_port = None if metrics_sock is None else metrics_sock.getsockname()[1]
                if metrics_port is not None:
                    click.echo(f"metrics on http://{settings.metrics_host}:{metrics_port}/metrics")
                limits = ConnectionLimits(
                    header_timeout=settings.header_timeout_seconds,
                    body_idle_timeout=settings.body_idle_timeout_seconds,
                    keepalive_timeout=settings.keepalive_timeout_seconds,
                    max_connections=settings.max_connections,
                )
                # As uvicorn.run does, but on the socket already bound and locked for.
                server = uvicorn.Server(
                    uvicorn.Config(
                        create_app(
                            container,
                            body_idle_timeout=limits.body_idle_timeout,
                            metrics_port=metrics_port,
                        ),
                        host=settings.host,  # for uvicorn's log lines only
                        port=settings.port,
                        log_level=settings.log_level,
                        # berkas's own handler for uvicorn's loggers, and no uvicorn
                        # access log: it prints raw paths with a link's signature.
                        log_config=log_config,
                        access_log=False,
                        proxy_headers=False,
                        server_header=False,
                        # httptools with deadlines, a head cap and a connection cap, and
                        # framing errors in the envelope (issue 9).
                        http=guarded_protocol(limits),
                        # uvicorn's own keep-alive timer; the protocol's is the one that
                        # holds when stray bytes arrive.
                        timeout_keep_alive=max(1, math.ceil(limits.keepalive_timeout)),
                    )
                )
                # uvicorn re-raises the SIGINT it handled once shut down (uvicorn.run
                # swallows it the same way).
                with contextlib.suppress(KeyboardInterrupt):
                    server.run(sockets=sockets)
            finally:
                container.close()
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the app's lifespan startup failed


def _print_demo(settings: Settings, client_id: str, secret: str) -> None:
    # The path this was run by (.venv/bin/berkas), unless run as a module (python -m).
    run_as = sys.argv[0]
    command = run_as if "/" in run_as and not run_as.endswith(".py") else "berkas"
    click.echo(
        "\nA demo partner client was created for this new data directory "
        "(shown once; keep the secret):\n"
        f"  Client-Id:  {client_id}\n"
        f"  Secret key: {secret}\n\n"
        "Next, in another terminal (or follow the curl walkthrough in README.md):\n"
        f"  export BERKAS_CLIENT_BASE_URL={settings.base_url}\n"
        f"  export BERKAS_CLIENT_ID={client_id} BERKAS_CLIENT_SECRET={secret}\n"
        f"  {command} partner requirements --business-type PERSONAL "
        "--legal-entity PERSEORANGAN --business-line RETAIL --nationality ID\n"
        f"  {command} partner upload --category DOCUMENT --code KTP path/to/ktp.jpg\n"
    )


@main.group()
def clients() -> None:
    """Partner clients: create, list, label, rotate-secret, disable, enable."""


@clients.command("create")
@click.option(
    "--client-id", default=None, help="e.g. BRN-0001-10791114622547 (generated if omitted)."
)
@click.option("--label", default=None, help='Your name for the partner, e.g. "Toko Maju".')
@click.option("--json", "as_json", is_flag=True, help="Print {client_id, secret_key} as JSON.")
@data_dir_option
def clients_create(
    client_id: str | None, label: str | None, as_json: bool, data_dir: Path | None
) -> None:
    """Create a client with a strong random secret key (printed once)."""

    def run() -> None:
        with _writing(data_dir) as container:
            client = container.clients.create(client_id, label=label)
        if as_json:
            click.echo(json.dumps({"client_id": client.client_id, "secret_key": client.secret_key}))
        else:
            click.echo(f"Client-Id:  {client.client_id}\nSecret key: {client.secret_key}")

    _guard(run)


@clients.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@data_dir_option
def clients_list(as_json: bool, data_dir: Path | None) -> None:
    """List clients as a table (secrets are never printed here)."""

    def run() -> None:
        from berkas.cli.tables import NONE, moment, table

        with _reading(data_dir) as container:
            rows = container.clients.list()
        now = datetime.now(UTC)
        if as_json:
            listed = []
            for c in rows:
                until = c.previous_expires_at if c.previous_secret_at(now) else None
                listed.append(
                    {
                        "client_id": c.client_id,
                        "label": c.label,
                        "enabled": c.enabled,
                        "created_at": iso8601(c.created_at),
                        "secret_rotated_at": _iso_or_none(c.secret_rotated_at),
                        "previous_secret_valid_until": _iso_or_none(until),
                    }
                )
            click.echo(json.dumps(listed))
            return
        if not rows:
            click.echo("no clients yet; add one with: berkas clients create", err=True)
            return
        headers = ("CLIENT-ID", "LABEL", "STATE", "CREATED", "SECRET ROTATED", "OLD SECRET UNTIL")
        cells = [
            (
                c.client_id,
                c.label or NONE,
                "enabled" if c.enabled else "disabled",
                moment(c.created_at),
                moment(c.secret_rotated_at),
                moment(c.previous_expires_at if c.previous_secret_at(now) else None),
            )
            for c in rows
        ]
        click.echo(table(headers, cells))

    _guard(run)


@clients.command("label")
@click.argument("client_id")
@click.argument("text")
@data_dir_option
def clients_label(client_id: str, text: str, data_dir: Path | None) -> None:
    """Name a client for operators, shown by clients list ("" removes the label)."""

    def run() -> None:
        with _writing(data_dir) as container:
            client = container.clients.set_label(client_id, text)
        shown = f"labelled {client.label!r}" if client.label else "has no label now"
        click.echo(f"{client.client_id} {shown}")

    _guard(run)


@clients.command("rotate-secret")
@click.argument("client_id")
@click.option(
    "--grace",
    default=None,
    metavar="DURATION",
    help="How long the old secret keeps working: 90s, 30m, 24h, 7d, or 0 for not at all "
    "(env BERKAS_SECRET_GRACE_HOURS, default 24h; at most 30d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new secret and dates as JSON.")
@data_dir_option
def clients_rotate_secret(
    client_id: str, grace: str | None, as_json: bool, data_dir: Path | None
) -> None:
    """Issue a new secret key (printed once); the old one keeps working for the grace.

    Every node verifies with both at once (they are in the database). Rotating again
    within a grace keeps only the secret it replaces: the one before stops at once.
    """

    def run() -> None:
        from berkas.cli.tables import moment, parse_duration

        try:
            chosen = None if grace is None else parse_duration(grace)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--grace'") from None
        with _writing(data_dir) as container:
            done = container.clients.rotate_secret(client_id, chosen)
        client = done.client
        if as_json:
            answer = {
                "client_id": client.client_id,
                "secret_key": client.secret_key,
                "previous_secret_valid_until": _iso_or_none(done.previous_valid_until),
                "dropped_previous_secret_valid_until": _iso_or_none(done.dropped_previous_until),
            }
            click.echo(json.dumps(answer))
            return
        click.echo(f"Client-Id:  {client.client_id}\nSecret key: {client.secret_key}")
        if done.previous_valid_until is None:
            click.echo("The old secret key no longer works.")
        else:
            until = moment(done.previous_valid_until)
            click.echo(f"The old secret key keeps working until {until}.")
        if done.dropped_previous_until is not None:
            # Only one previous secret is kept per client (see ClientService.rotate_secret).
            click.echo(
                "The secret key the previous rotation replaced (it had until "
                f"{moment(done.dropped_previous_until)}) stopped working now: only one "
                "old secret key is kept."
            )

    _guard(run)


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso8601(value)


@clients.command("disable")
@click.argument("client_id")
@data_dir_option
def clients_disable(client_id: str, data_dir: Path | None) -> None:
    """Disable a client: no new tokens, and tokens already issued stop working."""
    _guard(lambda: _set_enabled(data_dir, client_id, False))


@clients.command("enable")
@click.argument("client_id")
@data_dir_option
def clients_enable(client_id: str, data_dir: Path | None) -> None:
    """Enable a disabled client again."""
    _guard(lambda: _set_enabled(data_dir, client_id, True))


def _set_enabled(data_dir: Path | None, client_id: str, enabled: bool) -> None:
    with _writing(data_dir) as container:
        container.clients.set_enabled(client_id, enabled)
    click.echo(f"{client_id} {'enabled' if enabled else 'disabled'}")


@main.group()
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
        with _writing(data_dir) as container:
            stored = container.files.delete_any(file_id, Caller(actor=actor))
        click.echo(f"{stored.id} deleted (client {stored.client_id}, {stored.size} bytes)")

    _guard(run)


@files.command("hold")
@click.argument("file_id")
@actor_option
@data_dir_option
def files_hold(file_id: str, actor: str, data_dir: Path | None) -> None:
    """Put a file on legal hold: nothing deletes it (its partner, the operator, retention)
    until released."""
    _guard(lambda: _set_hold(data_dir, file_id, True, actor))


@files.command("release")
@click.argument("file_id")
@actor_option
@data_dir_option
def files_release(file_id: str, actor: str, data_dir: Path | None) -> None:
    """Lift a legal hold: deletion and retention apply again (at once if it has passed)."""
    _guard(lambda: _set_hold(data_dir, file_id, False, actor))


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

        settings = _settings(data_dir=data_dir)
        with upgrading(settings) as upgrade:
            _show_where(settings)
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

    _guard(run)


@main.group()
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
        with _reading(data_dir) as container:
            for event in container.files.export_events(since=start, client_id=client_id):
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

    _guard(run)


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


def _set_hold(data_dir: Path | None, file_id: str, hold: bool, actor: str) -> None:
    with _writing(data_dir) as container:
        stored = container.files.set_hold(file_id, hold, Caller(actor=actor))
    click.echo(f"{stored.id} {'on legal hold' if hold else 'released from legal hold'}")


@main.group()
def keys() -> None:
    """Token signing keys."""


@keys.command("rotate")
@data_dir_option
def keys_rotate(data_dir: Path | None) -> None:
    """Add a new signing key; old keys verify until every token they signed has expired."""

    def run() -> None:
        with _writing(data_dir) as container:
            kid = container.keys.rotate()
        click.echo(
            f"new signing key {kid}; every running node signs with it within seconds, and "
            "tokens signed with the old key verify until they expire"
        )

    _guard(run)


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@data_dir_option
def keys_list(as_json: bool, data_dir: Path | None) -> None:
    """List the signing keys: active, retiring (verifies its tokens until ...), expired.

    The public keys themselves are served at /.well-known/jwks.json.
    """

    def run() -> None:
        from berkas.cli.tables import moment, table

        with _reading(data_dir) as container:
            listed = container.keys.status()
        if as_json:
            rows = [
                {
                    "kid": key.kid,
                    "state": key.state,
                    "created_at": iso8601(key.created_at),
                    "retired_at": _iso_or_none(key.retired_at),
                    "verifies_until": _iso_or_none(key.verifies_until),
                }
                for key in listed
            ]
            click.echo(json.dumps(rows))
            return
        headers = ("KID", "STATE", "CREATED", "RETIRED", "VERIFIES UNTIL")
        cells = [
            (
                key.kid,
                key.state,
                moment(key.created_at),
                moment(key.retired_at),
                moment(key.verifies_until),
            )
            for key in listed
        ]
        click.echo(table(headers, cells))

    _guard(run)


@main.group("secrets")
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

        # Not through _reading: that opens every signing key, and this must also work
        # when a master key they need is missing.
        settings = _settings(data_dir=data_dir)
        report = secrets_status(settings)
        _show_where(settings)
        click.echo(json.dumps(report, indent=2))
        problems = status_problems(report)
        if check and problems:
            raise click.ClickException("; ".join(problems))

    _guard(run)


@secrets_group.command("rekey")
@data_dir_option
def secrets_rekey(data_dir: Path | None) -> None:
    """Reseal every secret under the current master key (after a master key change).

    Give the new key as BERKAS_MASTER_KEY (or the first line of the key file) and the old
    one as BERKAS_MASTER_KEY_PREVIOUS (or a later line); once this has run, the old key
    can be removed. Safe to repeat. Values found in clear are never sealed.
    """

    def run() -> None:
        with _writing(data_dir) as container:
            vault = container.secrets
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

    _guard(run)


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

        settings = _settings(data_dir=data_dir)
        _show_where(settings)
        sealed = seal_legacy(settings)
        # Said on stderr, naming each client: this is the one time berkas seals a value
        # it did not write itself, and the operator's terminal or log keeps the record.
        click.echo(
            f"sealed the client secret keys of {', '.join(sealed)} under the master key",
            err=True,
        )
        click.echo(f"sealed {len(sealed)} client secret key(s) an older release stored in clear")

    _guard(run)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@data_dir_option
def db_migrate(data_dir: Path | None) -> None:
    """Apply pending migrations (also done at every start)."""

    def run() -> None:
        with _writing(data_dir):
            pass
        click.echo("database is up to date")

    _guard(run)


@main.group()
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
        click.echo(init_storage(_settings(data_dir=data_dir)))

    _guard(run)


main.add_command(partner)
main.add_command(samples)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
