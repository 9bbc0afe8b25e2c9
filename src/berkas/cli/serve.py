"""``berkas serve``: the port and the data dir's lock first, then the start-up chores, the
demo client, and the app on uvicorn (api/server.py); with ``--workers N``, a supervisor
(cli/workers.py) runs the chores once and N worker processes serve the port."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from berkas import __version__
from berkas.cli.common import data_dir_option, describe, settings_from
from berkas.cli.workers import (
    Supervisor,
    WorkerSpec,
    tell_started,
    watch_supervisor,
    worker_command,
)
from berkas.core.errors import BerkasError

# The server's modules are imported inside the verbs that use them: `pip install berkas`
# has no server (see server_extra), and `berkas --help` and the partner verbs need none.
if TYPE_CHECKING:
    from berkas.config import Settings
    from berkas.services.bundle import Services
    from berkas.wiring.startup import DemoClient


@click.command()
@click.option(
    "--host", default=None, help="Interface to bind (env BERKAS_HOST, default 127.0.0.1)."
)
@click.option("--port", type=int, default=None, help="Port (env BERKAS_PORT, default 8000).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes serving this node's port (env BERKAS_WORKERS, default 1); each "
    "takes a node number of its own.",
)
@click.option("--worker-of", default=None, hidden=True)
@data_dir_option
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    worker_of: str | None,
    data_dir: Path | None,
) -> None:
    """Run the HTTP service (embedded SQLite + local disk unless configured otherwise).

    One server per data dir: a second serve on it refuses to start.
    """
    from berkas.api import observe
    from berkas.wiring import CannotListen, DataDirInUse, listen, listen_metrics, lock_data_dir

    settings = settings_from(host=host, port=port, workers=workers, data_dir=data_dir)
    log_config = observe.configure(settings.log_level, settings.log_format)
    if worker_of is not None:
        _serve_as_worker(settings, log_config, WorkerSpec.decode(worker_of))
        return
    count = settings.workers
    # The port first: a taken (or mistyped) port is refused before the data dir is
    # touched, and "serving on" below is only ever printed for a port we hold.
    try:
        sock = listen(settings)
    except CannotListen as exc:
        raise click.ClickException(str(exc)) from None
    metrics_socks = _listen_metrics(settings, sock, listen_metrics)
    with contextlib.ExitStack() as bound:
        for each in (sock, *metrics_socks):
            if each is not None:
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
            if count == 1:
                started = _serve_one(settings, log_config, sock, metrics_socks[0])
            else:
                started = _supervise(settings, sock, metrics_socks, lock.fileno())
    if not started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE: the app's lifespan startup failed


def _listen_metrics(
    settings: Settings,
    sock: socket.socket,
    listen_metrics: Callable[[Settings, int], socket.socket | None],
) -> list[socket.socket | None]:
    # One metrics listener per worker (BERKAS_METRICS_PORT + its number), bound before the
    # data dir is touched, as the port is.
    from berkas.wiring import CannotListen

    bound: list[socket.socket | None] = []
    try:
        for worker in range(settings.workers):
            bound.append(listen_metrics(settings, worker))
    except CannotListen as exc:
        for each in (sock, *bound):
            if each is not None:
                each.close()
        raise click.ClickException(f"{exc} (the metrics listener: BERKAS_METRICS_PORT)") from None
    return bound


def _serve_one(
    settings: Settings,
    log_config: dict[str, Any],
    sock: socket.socket,
    metrics_sock: socket.socket | None,
) -> bool:
    from berkas.wiring import ensure_demo_client, prepare

    try:
        services = prepare(settings, serving=True)
    except (BerkasError, ValueError, OSError) as exc:
        raise click.ClickException(f"cannot start: {describe(exc)}") from None
    try:
        _print_demo(settings, ensure_demo_client(services, settings))
        node = services.nodes.node_id
        click.echo(_banner(settings, sock, f"node {'-' if node is None else node}"))
        if metrics_sock is not None:
            click.echo(f"  metrics:     {_metrics_url(settings, metrics_sock)}")
        started = _run(settings, log_config, services, sock, metrics_sock)
    finally:
        services.close()
    # After the node's own cleanup (its number released, the database closed): the one
    # line that says a SIGTERM stopped it cleanly, with status 0.
    click.echo(f"berkas stopped (node {'-' if node is None else node})")
    return started


def _banner(settings: Settings, sock: socket.socket, who: str) -> str:
    # What an operator needs to tell nodes apart and check their set-up: the address
    # really bound (a port of 0 or a name resolves here), the URL partners and links
    # use, and where the data goes, every credential masked.
    from berkas.wiring import database_shown, store_shown

    host, port = sock.getsockname()[:2]
    bound = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    public = settings.base_url
    source = "BERKAS_PUBLIC_URL" if settings.public_url else "from the listen address"
    return "\n".join(
        (
            f"berkas {__version__} listening on {bound} ({who})",
            f"  public URL:  {public} ({source}; links and the docs use it)",
            f"  database:    {database_shown(settings)}",
            f"  store:       {store_shown(settings)}",
            f"  data dir:    {settings.data_dir}",
        )
    )


def _metrics_url(settings: Settings, metrics_sock: socket.socket) -> str:
    return f"http://{settings.metrics_host}:{metrics_sock.getsockname()[1]}/metrics"


def _run(
    settings: Settings,
    log_config: dict[str, Any],
    services: Services,
    sock: socket.socket,
    metrics_sock: socket.socket | None,
    *,
    on_started: Callable[[], None] | None = None,
) -> bool:
    from berkas.api import server
    from berkas.api.connections import ConnectionLimits

    limits = ConnectionLimits(
        header_timeout=settings.header_timeout_seconds,
        body_idle_timeout=settings.body_idle_timeout_seconds,
        keepalive_timeout=settings.keepalive_timeout_seconds,
        max_connections=settings.max_connections,
    )
    return server.run(
        services,
        [sock] if metrics_sock is None else [sock, metrics_sock],
        limits=limits,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config,
        metrics_port=None if metrics_sock is None else metrics_sock.getsockname()[1],
        on_started=on_started,
    )


def _supervise(
    settings: Settings,
    sock: socket.socket,
    metrics_socks: list[socket.socket | None],
    lock_fd: int,
) -> bool:
    # docs/design.md 5.6: the chores once, here, before any worker runs; then the workers.
    from berkas.wiring import ensure_demo_client, prepare_supervisor

    try:
        services = prepare_supervisor(settings)
    except (BerkasError, ValueError, OSError) as exc:
        raise click.ClickException(f"cannot start: {describe(exc)}") from None
    try:
        demo = ensure_demo_client(services, settings)
    finally:
        services.close()
    _print_demo(settings, demo)

    def announce(workers: list[tuple[int, int, int | None]]) -> None:
        click.echo(_banner(settings, sock, f"{len(workers)} workers"))
        for worker, pid, node_id in workers:
            metrics = metrics_socks[worker]
            where = "" if metrics is None else f", metrics {_metrics_url(settings, metrics)}"
            click.echo(f"  worker {worker}:    pid {pid}, node {node_id}{where}")

    node_id = settings.node_id
    supervisor = Supervisor(
        workers=settings.workers,
        command=worker_command(settings.host, settings.port, str(settings.data_dir)),
        listen=sock,
        metrics=metrics_socks,
        lock_fd=lock_fd,
        wanted=lambda worker: node_id + worker if isinstance(node_id, int) else None,
    )
    status = supervisor.run(announce)
    if status != 0:
        raise click.exceptions.Exit(status)
    click.echo(f"berkas stopped ({settings.workers} workers)")
    return True


def _serve_as_worker(settings: Settings, log_config: dict[str, Any], spec: WorkerSpec) -> None:
    # A worker of `serve --workers N`: the socket, metrics socket and data-dir lock are
    # its supervisor's, inherited; it claims its node number and serves until SIGTERM.
    from berkas.wiring import prepare_worker

    watch_supervisor(spec.life)
    sock = socket.socket(fileno=spec.listen)
    metrics_sock = None if spec.metrics < 0 else socket.socket(fileno=spec.metrics)
    try:
        services = prepare_worker(
            settings, worker=spec.worker, wanted=None if spec.wanted < 0 else spec.wanted
        )
    except (BerkasError, ValueError, OSError) as exc:
        raise click.ClickException(f"worker {spec.worker} cannot start: {describe(exc)}") from None
    try:
        started = _run(
            settings,
            log_config,
            services,
            sock,
            metrics_sock,
            on_started=lambda: tell_started(spec.ready, services.nodes.node_id),
        )
    finally:
        services.close()
    if not started:
        sys.exit(3)


def _print_demo(settings: Settings, demo: DemoClient | None) -> None:
    if demo is None:
        return
    # The path this was run by (.venv/bin/berkas), unless run as a module (python -m).
    run_as = sys.argv[0]
    command = run_as if "/" in run_as and not run_as.endswith(".py") else "berkas"
    if demo.secret_key is None:
        # Another node on this database created it and showed its secret, once: a second
        # secret in a second node's log would be one more copy to leak, and a second
        # client one more to disable.
        click.echo(
            f"\nThis database's demo partner client is {demo.client_id}; another node "
            "created it and showed its secret key once.\n"
            f"  A new secret key for it: {command} clients rotate-secret {demo.client_id}\n"
        )
        return
    click.echo(
        "\nA demo partner client was created for this new database "
        "(shown once; keep the secret):\n"
        f"  Client-Id:  {demo.client_id}\n"
        f"  Secret key: {demo.secret_key}\n\n"
        "Next, in another terminal (or follow the curl walkthrough in README.md):\n"
        f"  export BERKAS_CLIENT_BASE_URL={settings.base_url}\n"
        f"  export BERKAS_CLIENT_ID={demo.client_id} BERKAS_CLIENT_SECRET={demo.secret_key}\n"
        f"  {command} partner requirements --business-type PERSONAL "
        "--legal-entity PERSEORANGAN --business-line RETAIL --nationality ID\n"
        f"  {command} partner upload --category DOCUMENT --code KTP path/to/ktp.jpg\n"
    )
