"""The data dir as a node sees it: private directories, the node identity its leases
are held under, the check that a data dir and a current database exist, and when an
admin command needs no data dir at all (a fleet's, README "Admin on a fleet")."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.engine import display_url, sqlite_file
from berkas.adapters.durable import atomic_write
from berkas.config import Settings
from berkas.core.ports import Clock
from berkas.services.nodes import NodeLeases

log = logging.getLogger(__name__)


NODE_IDENTITY = "node-identity"


def needs_data_dir(settings: Settings) -> bool:
    """Whether something this process opens lives in the data dir by default: the SQLite
    database, the blob store or the master key file.

    A fleet's admin command (BERKAS_DATABASE_URL, BERKAS_STORAGE_URL and the master key
    set) needs none: the rest of a data dir is a serving node's own (its lock, spool,
    node identity, demo-client marker), and ``clients.changed`` only speeds up the node
    serving that data dir, which every other node does without (docs/design.md 2.1).
    """
    return (
        settings.database_url is None
        or settings.storage_url is None
        or (settings.master_key is None and settings.master_key_file is None)
    )


def uses_data_dir(settings: Settings) -> bool:
    """Whether this process works in a data dir: one it needs, or one that exists (an
    admin command run on a node still touches its ``clients.changed``)."""
    return needs_data_dir(settings) or settings.data_dir.is_dir()


def refuse_foreign_owner(settings: Settings) -> None:
    """Raise ``PermissionError`` when root would write into a data dir another user owns
    (an ``OSError``, so ``serve`` and every admin verb print it as their one line).

    The systemd unit (deploy/berkas.service) runs berkas as a dynamic user that owns the
    data dir; a command run there as root would leave root-owned files (SQLite's -wal and
    -shm, ``clients.changed``, the node identity) that the service can then not open, and
    it would stop at its next start. ``deploy/berkas-admin`` runs a command as the
    service's user instead (README "Running admin commands for the service").
    """
    if os.geteuid() != 0:
        return  # any other user cannot write into a 0700 dir of someone else's anyway
    try:
        owner = settings.data_dir.stat().st_uid
    except FileNotFoundError:
        return
    if owner != 0:
        raise PermissionError(
            f"the data dir {settings.data_dir} belongs to uid {owner} and this command runs "
            "as root, so the files it wrote there would be root's and the service could not "
            "open them; run it as the data dir's user (for the systemd unit: berkas-admin "
            'COMMAND, README "Running admin commands for the service")'
        )


def check_existing(settings: Settings) -> None:
    """Raise ``ValueError`` unless the data dir (where one is needed) and a current
    database exist (see ``open_existing``); touches nothing."""
    url = settings.resolved_database_url
    path = sqlite_file(url)  # first: an unsupported URL is a configuration error
    refuse_foreign_owner(settings)
    if needs_data_dir(settings) and not settings.data_dir.is_dir():
        raise ValueError(
            f"no berkas data dir at {settings.data_dir}; start the server there with "
            "berkas serve, or pass --data-dir"
        )
    # SQLite creates a missing file on first connect; a read must not leave an empty
    # database behind that a later serve would take for a real one.
    if path is not None and not path.is_file():
        raise ValueError(
            f"no berkas database at {path}; start the server with berkas serve, "
            "or run berkas db migrate"
        )
    database = SqlDatabase.from_url(url)
    try:
        current = database.current_revision()
        head = database.head_revision()
    finally:
        database.close()
    if current != head:
        raise ValueError(
            f"the database schema is at revision {current or 'none'}, this berkas needs "
            f"{head}; run berkas db migrate"
        )


def private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700), or make an existing one private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        # An existing directory made by hand (mkdir -m 755) would expose the database of
        # client secrets; it is ours, so it is made private rather than refused.
        log.warning("making %s private (mode 0700)", path)
        path.chmod(0o700)


def node_identity(settings: Settings, *, create: bool) -> str:
    # Which data dir a lease belongs to: a node restarting on its data dir after a crash
    # (the data-dir lock proves the old process is gone) takes its lease straight back.
    path = settings.data_dir / NODE_IDENTITY
    if not path.exists():
        if not create:
            return f"unprepared-{secrets.token_hex(8)}"
        with contextlib.suppress(FileExistsError):  # another process created it first
            atomic_write(path, secrets.token_hex(16).encode(), exclusive=True)
    return path.read_text().strip()


def node_leases(
    settings: Settings, database: SqlDatabase, clock: Clock, *, worker: int | None = None
) -> NodeLeases:
    where = f"host {socket.gethostname()} pid {os.getpid()} data dir {settings.data_dir}"
    return NodeLeases(
        database.leases,
        clock,
        holder=lease_holder(settings, worker=worker),
        label=where if worker is None else f"{where} worker {worker}",
    )


def lease_holder(settings: Settings, *, worker: int | None = None) -> str:
    # The data dir's identity, on this host, at this path. Only the same node restarting
    # (the data-dir flock proves the old process is gone) may take a live lease back; a
    # data dir copied to another host or path (a snapshot, a baked image) is another
    # node, so it must not inherit the lease the original still holds. A worker (docs/
    # design.md 5.6) holds under its own slot: its supervisor restarts it only once it has
    # reaped the old process, and never lets two workers share a number. Worker 0 holds
    # as the single process did, so turning workers on keeps that number.
    where = f"{node_identity(settings, create=False)}|{socket.gethostname()}|{settings.data_dir}"
    if worker:
        where += f"|worker {worker}"
    return hashlib.sha256(where.encode()).hexdigest()[:32]


def worker_spool_dir(settings: Settings, worker: int | None) -> Path:
    """Where a process's uploads spool: the data dir's spool, or a worker's own room in
    it, so that a restarted worker clears its own leftovers and never a live worker's."""
    if worker is None:
        return settings.spool_dir
    return settings.spool_dir / f"worker-{worker}"


def stale_after(settings: Settings) -> timedelta:
    # Longer than any request can run (a URL fetch is the slowest step), with a margin.
    return timedelta(seconds=settings.fetch_total_timeout + 120)


def database_shown(settings: Settings) -> str:
    """The database URL as it may be printed (any password masked)."""
    return display_url(settings.resolved_database_url)


def store_shown(settings: Settings) -> str:
    """The blob store as it may be printed: its URL and, for S3, the endpoint, each with
    any user and password masked (S3 keys come from the environment, never printed)."""
    shown = _without_credentials(settings.resolved_storage_url)
    if settings.storage.scheme == "s3":
        endpoint = settings.s3_endpoint_url
        where = "AWS" if endpoint is None else _without_credentials(endpoint)
        shown += f" (endpoint {where})"
    return shown


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
