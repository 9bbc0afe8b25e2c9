"""``berkas serve``: the port and the data dir's lock first, then the start-up chores, the
demo client, and the app on uvicorn (api/server.py)."""

from __future__ import annotations

import contextlib
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import click

from berkas import __version__
from berkas.cli.common import data_dir_option, describe, settings_from
from berkas.core.errors import BerkasError

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.
if TYPE_CHECKING:
    from berkas.config import Settings


@click.command()
@click.option(
    "--host", default=None, help="Interface to bind (env BERKAS_HOST, default 127.0.0.1)."
)
@click.option("--port", type=int, default=None, help="Port (env BERKAS_PORT, default 8000).")
@data_dir_option
def serve(host: str | None, port: int | None, data_dir: Path | None) -> None:
    """Run the HTTP service (embedded SQLite + local disk unless configured otherwise).

    One server per data dir: a second serve on it refuses to start.
    """
    from berkas.api import observe, server
    from berkas.api.connections import ConnectionLimits
    from berkas.wiring import (
        CannotListen,
        DataDirInUse,
        ensure_demo_client,
        listen,
        listen_metrics,
        lock_data_dir,
        prepare,
    )

    settings = settings_from(host=host, port=port, data_dir=data_dir)
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
            raise click.ClickException(f"cannot start: {describe(exc)}") from None
        with lock:
            try:
                services = prepare(settings, serving=True)
            except (BerkasError, ValueError, OSError) as exc:
                raise click.ClickException(f"cannot start: {describe(exc)}") from None
            try:
                demo = ensure_demo_client(services, settings)
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
                started = server.run(
                    services,
                    sockets,
                    limits=limits,
                    host=settings.host,
                    port=settings.port,
                    log_level=settings.log_level,
                    log_config=log_config,
                    metrics_port=metrics_port,
                )
            finally:
                services.close()
    if not started:
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
