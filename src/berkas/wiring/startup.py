"""Start-up chores: ``prepare`` (directories, migrations, first keys, crash sweeps) for
``serve`` and the write verbs, ``open_existing`` for read-only verbs, the listen socket
and data-dir lock ``serve`` holds first, the demo client, and ``berkas files upgrade``'s
use case over a prepared data dir."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from berkas.adapters import datadir
from berkas.adapters import listen as listener
from berkas.adapters.clock import SystemClock
from berkas.adapters.datadir import DataDirLock
from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.engine import sqlite_file
from berkas.adapters.sealing import SealedDataKeys
from berkas.adapters.storage.local import LocalBlobStore
from berkas.config import Settings
from berkas.core.content import ImageLimits
from berkas.core.errors import Conflict
from berkas.services.bundle import Services
from berkas.services.clients import new_client_id
from berkas.services.nodes import NodeLeases
from berkas.services.spool import cleanup_stale
from berkas.services.upgrade import UpgradeService
from berkas.wiring.build import build
from berkas.wiring.datadir import (
    check_existing,
    node_identity,
    node_leases,
    private_dir,
    refuse_foreign_owner,
    uses_data_dir,
    worker_spool_dir,
)
from berkas.wiring.secrets import prepare_secrets, sealer
from berkas.wiring.storage import s3_store

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


DEMO_MARKER = ".demo-client-created"


def prepare(settings: Settings, *, serving: bool) -> Services:
    """Make the data dir and database ready, then build the services.

    Creates private directories, migrates the schema, creates the first signing key and
    the link secret. ``serving`` marks the one process that will serve HTTP on this data
    dir (``berkas serve`` holds its lock): only it sweeps what an earlier crash left
    (partial spool files, temporary blobs, blobs whose row never committed) and runs the
    first housekeeping round; an admin command beside a live server must not delete that
    server's uploads in flight.
    """
    node_id = _ready(settings, serving=serving, claim=serving)
    services = build(settings, node_id=node_id)
    if serving:
        _first_round(services, services.uploads.recover_orphans)
    return services


def _first_round(services: Services, recover: Callable[[], int]) -> None:
    """The sweep of what a crash left (``recover``) and the first housekeeping round of
    the process that serves; the services are closed if either fails."""
    try:
        removed = recover()
        if removed:
            log.warning("removed %d stored blob(s) whose upload never committed", removed)
        services.housekeeping.run_once()
    except BaseException:
        services.close()
        raise


def prepare_supervisor(settings: Settings) -> Services:
    """``prepare`` for the supervisor of ``berkas serve --workers N`` (docs/design.md 5.6),
    which holds the data dir's lock and runs before any worker: every sweep of
    ``prepare(serving=True)`` that is not tied to a node number (the spool with every
    worker's room, temporary and staged blobs) and the first housekeeping round. It
    claims no number and mints nothing: each worker claims its own
    (``prepare_worker``) and recovers its number's pending blobs."""
    _ready(settings, serving=True, claim=False)
    services = build(settings)
    _first_round(services, services.uploads.recover_staged)
    return services


def prepare_worker(settings: Settings, *, worker: int, wanted: int | None) -> Services:
    """Build worker ``worker``'s services once its supervisor has prepared the data dir.

    Claims ``wanted`` (``None``: the lowest free number), then clears only what this
    worker owns, as the node's other workers may be serving: its own spool room, and
    the pending and staged blobs of ids its number minted (the number was this slot's,
    or free, so no live process mints under it)."""
    os.umask(0o077)
    spool = worker_spool_dir(settings, worker)
    private_dir(spool)
    removed = cleanup_stale(spool)
    if removed:
        log.warning("worker %d: removed %d partial upload(s) it left", worker, removed)
    database = SqlDatabase.from_url(settings.resolved_database_url)
    try:
        node_id = node_leases(settings, database, SystemClock(), worker=worker).claim(wanted)
    finally:
        database.close()
    services = build(settings, node_id=node_id, worker=worker)
    try:
        orphans = services.uploads.recover_documents(own_staged_only=True)
        if orphans:
            log.warning(
                "worker %d: removed %d stored blob(s) whose upload never committed",
                worker,
                orphans,
            )
    except BaseException:
        services.close()
        raise
    return services


def _ready(settings: Settings, *, serving: bool, claim: bool) -> int | None:
    # Directories, migrations, the node number (``claim``), first secrets, and the sweeps
    # of a serving start; returns the claimed number.
    # Everything this process creates (database, keys, blobs, spool) is private: the
    # database holds every client's secret (STYLE: refuse insecure set-ups at start).
    os.umask(0o077)
    refuse_foreign_owner(settings)
    if serving or uses_data_dir(settings):
        private_dir(settings.data_dir)
        private_dir(settings.spool_dir)
        node_identity(settings, create=True)
    if serving:
        _warn_wildcard_links(settings)
        removed = cleanup_stale(settings.spool_dir)
        # Every worker's room too: no worker runs yet (the supervisor sweeps first).
        for room in settings.spool_dir.glob("worker-*"):
            if room.is_dir() and not room.is_symlink():
                removed += cleanup_stale(room)
        if removed:
            log.warning("removed %d partial upload(s) left by an earlier crash", removed)
    database = SqlDatabase.from_url(
        settings.resolved_database_url, sealer=sealer(settings, create=True)
    )
    node_id: int | None = None
    try:
        database.migrate()
        if claim:
            # Before anything is swept or minted: a node number another live node holds
            # is refused here, naming that node.
            wanted = settings.node_id if isinstance(settings.node_id, int) else None
            node_id = node_leases(settings, database, SystemClock()).claim(wanted)
        prepare_secrets(settings, database)
    finally:
        database.close()
    storage = settings.storage
    if storage.root is not None:
        store = LocalBlobStore(storage.root, create=True)
        if serving:
            removed = store.cleanup_temp()
            if removed:
                log.warning("removed %d temporary blob(s) left by an earlier crash", removed)
    if storage.scheme == "s3":
        # A missing bucket or a wrong endpoint stops start-up here, naming both, rather
        # than failing every upload later with a bare storage_unavailable.
        s3_store(settings).require_bucket()
    return node_id


def _warn_wildcard_links(settings: Settings) -> None:
    # Links are built from BERKAS_PUBLIC_URL or else the listen address: behind a wildcard
    # bind that is http://0.0.0.0:port, which no partner can open.
    wildcard = {"0.0.0.0", "::", ""}  # noqa: S104 - recognised here, not bound to
    if settings.public_url is None and settings.host.strip("[]") in wildcard:
        log.warning(
            "links will point at %s, which partners cannot reach: listening on every "
            "interface needs BERKAS_PUBLIC_URL (the address partners use, e.g. "
            "https://berkas.example.com)",
            settings.base_url,
        )


def open_existing(settings: Settings) -> Services:
    """Build the services over a data dir and database that already exist and are current.

    For read-only commands beside (or without) a server: creates, migrates and sweeps
    nothing. Raises ``ValueError`` naming the absolute path of a missing data dir or
    SQLite file, and pointing at ``berkas db migrate`` when the schema is behind.
    """
    check_existing(settings)
    return build(settings)


@contextlib.contextmanager
def upgrading(settings: Settings) -> Iterator[UpgradeService]:
    """``berkas files upgrade``: an existing data dir prepared as for every write verb
    (migrated, never swept), and the upgrade use case over its database and store."""
    path = sqlite_file(settings.resolved_database_url)
    if not settings.data_dir.is_dir() or (path is not None and not path.is_file()):
        raise ValueError(
            f"no berkas data dir or database at {settings.data_dir}; files upgrade upgrades "
            "an existing one (pass --data-dir)"
        )
    services = prepare(settings, serving=False)
    try:
        clock = SystemClock()
        database = services.database
        where = f"host {socket.gethostname()} pid {os.getpid()}"
        yield UpgradeService(
            files=database.files,
            blobs=services.blobs,
            clock=clock,
            tasks=database.tasks,
            # One holder for every run (one at a time, by the task lease): a run after a
            # killed one takes its node number straight back and clears what it left.
            nodes=NodeLeases(
                database.leases,
                clock,
                holder="berkas files upgrade",
                label=f"files upgrade, {where}",
            ),
            holder=f"files upgrade, {where}, {secrets.token_hex(4)}",
            spool_dir=settings.spool_dir,
            data_keys=SealedDataKeys(sealer(settings, create=False)),
            encrypt=settings.encrypts_at_rest,
            retention=settings.retention,
            keep_metadata=settings.keep_metadata_categories,
            image_limits=ImageLimits(
                max_pixels=settings.max_image_pixels, max_side=settings.max_image_side
            ),
        )
    finally:
        services.close()


def listen(settings: Settings) -> socket.socket:
    """The bound, listening socket ``serve`` hands to uvicorn; raises ``CannotListen``."""
    return listener.listen(settings.host, settings.port)


def listen_metrics(settings: Settings, worker: int = 0) -> socket.socket | None:
    """The metrics listener's socket (worker ``worker``'s, BERKAS_METRICS_PORT + it);
    None when /metrics is on the partner port."""
    where = settings.worker_metrics_listener(worker)
    return None if where is None else listener.listen(*where)


def lock_data_dir(settings: Settings) -> DataDirLock:
    """Take the one-server lock on the data dir (creating the dir, 0700, if it is new).

    Raises ``DataDirInUse`` naming the pid of the serve that holds it. Hold the lock for
    the life of the process: it is what lets ``prepare(serving=True)`` sweep the spool.
    """
    # Private from the start (as in prepare): the dir will hold every client's secret.
    os.umask(0o077)
    refuse_foreign_owner(settings)
    # No chmod of an existing dir here (prepare does that once the lock is ours): a
    # refused second server must leave the first one's data dir exactly as it was.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return datadir.lock(settings.data_dir)


# The service_secrets row naming the database's demo client: claimed by the first node to
# get there, so nodes started together on one database make one demo client, not one each.
DEMO_CLIENT_NAME = "demo-client"


@dataclass(frozen=True, slots=True)
class DemoClient:
    """The database's demo client; ``secret_key`` only for the process that created it
    (None: another node did, and showed the secret once there)."""

    client_id: str
    secret_key: str | None


def ensure_demo_client(services: Services, settings: Settings) -> DemoClient | None:
    """On a new data dir serving on loopback (or BERKAS_DEMO_CLIENT=true): the demo client
    of the database, created if the database has no client yet, at most one per database
    whatever the number of nodes. None when no demo is wanted, this data dir has handled
    it before, or the database already has clients of the operator's own."""
    marker = settings.data_dir / DEMO_MARKER
    wanted = settings.demo_client
    if wanted is None:
        wanted = settings.serves_loopback_only
    if not wanted or marker.exists():
        return None
    demo = _demo_of(services)
    marker.write_text("demo client handled (berkas clients list shows every client)\n")
    return demo


def _demo_of(services: Services) -> DemoClient | None:
    database = services.database
    assert isinstance(database, SqlDatabase)  # build() makes no other
    named = database.service_secrets.get(DEMO_CLIENT_NAME)
    clients = {client.client_id for client in services.clients.list()}
    if named is not None:
        claimed = named.decode()
        if claimed in clients:
            return DemoClient(claimed, None)
        if clients:
            return None  # the claim's node never made it, and the operator has clients
        # Claimed by a node that stopped before creating it: made now, under that id.
        return _create_demo(services, claimed)
    if clients:
        return None  # the operator's clients already: no demo beside them
    candidate = new_client_id()
    # The first insert wins (SqlServiceSecrets.ensure); a node that lost the race learns
    # the winner's id and creates nothing.
    claimed = database.service_secrets.ensure(
        DEMO_CLIENT_NAME, candidate.encode(), SystemClock().now()
    ).decode()
    if claimed != candidate:
        return DemoClient(claimed, None)
    return _create_demo(services, candidate)


def _create_demo(services: Services, client_id: str) -> DemoClient:
    try:
        client = services.clients.create(client_id, label="demo")
    except Conflict:  # another node made the claimed client a moment ago
        return DemoClient(client_id, None)
    return DemoClient(client.client_id, client.secret_key)
