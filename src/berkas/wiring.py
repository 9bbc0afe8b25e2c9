"""The composition root: settings -> adapters -> services. Nothing else picks an implementation.

``build`` only constructs; ``prepare`` does the start-up chores (private directories,
migrations, first keys, sweeps of what a crash left) that ``serve`` and the write verbs
run; ``open_existing`` is what read-only verbs use: it creates nothing. ``listen`` and
``lock_data_dir`` are the two things ``serve`` holds before it prepares anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from berkas.adapters import datadir
from berkas.adapters import listen as listener
from berkas.adapters.clock import SystemClock
from berkas.adapters.datadir import DataDirInUse, DataDirLock
from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.engine import display_url, sqlite_file
from berkas.adapters.db.repositories import clear_value_message
from berkas.adapters.durable import atomic_write
from berkas.adapters.fetch import GuardedFetcher
from berkas.adapters.key_import import import_key_directory
from berkas.adapters.keys import KeyRing, KeyStore
from berkas.adapters.listen import CannotListen
from berkas.adapters.sealing import (
    SealedDataKeys,
    Sealer,
    create_key_file,
    parse_master_key,
    read_key_file,
)
from berkas.adapters.storage.local import LocalBlobStore
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.config import Settings, s3_bucket_and_prefix
from berkas.core.catalogue import Catalogue
from berkas.core.content import ImageLimits
from berkas.core.egress import EgressPolicy
from berkas.core.ids import IdMinter
from berkas.core.links import LinkSigner
from berkas.core.models import Client, UpgradeBacklog
from berkas.core.ports import BlobStore, Clock, Fetcher, LinkPresigner
from berkas.core.wire import iso8601
from berkas.services.bundle import Services
from berkas.services.clients import ClientService
from berkas.services.files import FileService
from berkas.services.housekeeping import Housekeeping
from berkas.services.idempotency import IdempotentUploads
from berkas.services.limits import ClientLimits, Rate
from berkas.services.links import LinkService
from berkas.services.nodes import NodeLeases
from berkas.services.requirements import RequirementsService
from berkas.services.signed import RequestVerifier
from berkas.services.spool import cleanup_stale
from berkas.services.tokens import LEEWAY_SECONDS, TokenService
from berkas.services.upgrade import UpgradeService
from berkas.services.uploads import UploadService

if TYPE_CHECKING:
    from berkas.adapters.storage.s3 import S3BlobStore

# CannotListen and DataDirInUse are re-exported for the CLI, which catches them but
# never imports an adapter.
__all__ = [
    "DEMO_MARKER",
    "CannotListen",
    "DataDirInUse",
    "build",
    "database_shown",
    "ensure_demo_client",
    "init_storage",
    "listen",
    "lock_data_dir",
    "open_existing",
    "prepare",
    "private_dir",
    "secrets_status",
    "upgrading",
]

log = logging.getLogger(__name__)

DEMO_MARKER = ".demo-client-created"
NODE_IDENTITY = "node-identity"
# Longer than a serving node's key sync (api.app.KEY_SYNC_SECONDS) with room to spare:
# after a rotation elsewhere a node may sign with the retired key until it syncs.
_KEY_SYNC_MARGIN = timedelta(minutes=1)
# The name of the link secret in the database's service_secrets.
LINK_SECRET_NAME = "link-secret"  # noqa: S105 - a row name, not a secret


def build(settings: Settings, *, node_id: int | None = None) -> Services:
    """Construct adapters and services from ``settings``; creates and changes nothing.

    ``node_id`` is the number ``prepare`` leased for a serving node; without it the
    configured number is used (0 for ``auto``: an admin command mints no ids). A data dir
    that ``prepare`` never made ready (no keys, no link secret) is refused here with a
    message saying what is missing.
    """
    clock = SystemClock()
    sealer = _sealer(settings, create=False)
    database = SqlDatabase.from_url(settings.resolved_database_url, sealer=sealer)
    # Opening needs only the master key: rows encrypted earlier stay readable after
    # BERKAS_ENCRYPT_AT_REST is switched off.
    data_keys = SealedDataKeys(sealer)
    try:
        keys = _key_ring(settings, database.signing_keys, clock, create=False)
        link_secret = _link_secret(settings, database)
    except BaseException:
        database.close()
        raise
    nodes = _node_leases(settings, database, clock)
    if node_id is not None:
        nodes.node_id = node_id
    else:
        node_id = settings.node_id if isinstance(settings.node_id, int) else 0
    blobs = _blob_store(settings)
    catalogue = Catalogue.load(settings.catalogue_file)
    links = LinkService(
        LinkSigner(link_secret),
        clock,
        base_url=settings.base_url,
        ttl=timedelta(seconds=settings.link_ttl_seconds),
        presigner=_presigner(settings, blobs),
    )
    stale_after = _stale_after(settings)
    uploads = UploadService(
        catalogue=catalogue,
        files=database.files,
        blobs=blobs,
        minter=IdMinter(node_id, lambda: int(clock.now().timestamp() * 1000)),
        clock=clock,
        links=links,
        idempotency=IdempotentUploads(database.replays, clock, stale_after=stale_after),
        spool_dir=settings.spool_dir,
        image_limits=ImageLimits(
            max_pixels=settings.max_image_pixels, max_side=settings.max_image_side
        ),
        key_prefix=settings.key_prefix,
        env=settings.env,
        node_id=node_id,
        fetcher=_fetcher(settings),
        retention=lambda category: _retention(settings, category),
        data_keys=data_keys if settings.encrypts_at_rest else None,
        keep_metadata=settings.keep_metadata_categories,
    )
    files = FileService(
        database.files,
        blobs,
        links,
        events=database.events,
        clock=clock,
        node_id=node_id,
        data_keys=data_keys,
    )
    return Services(
        clients=ClientService(
            database.clients, clock, grace=timedelta(hours=settings.secret_grace_hours)
        ),
        tokens=TokenService(
            keys,
            database.clients,
            clock,
            default_minutes=settings.token_default_minutes,
            max_minutes=settings.token_max_minutes,
        ),
        signed=RequestVerifier(
            database.clients,
            database.replays,
            clock,
            window=timedelta(seconds=settings.timestamp_window_seconds),
            stale_after=stale_after,
        ),
        requirements=RequirementsService(catalogue),
        uploads=uploads,
        files=files,
        # Keys whose every token has expired leave the ring and JWKS, and Request-Id
        # records past their retention are forgotten: at start, then while serving.
        housekeeping=Housekeeping(
            database.replays,
            keys,
            clock,
            clients=database.clients,
            files=files,
            tasks=database.tasks,
            holder=_node_identity(settings, create=False) + f"#{node_id}",
            retention=timedelta(seconds=settings.replay_retention),
            upload_retention=timedelta(hours=settings.idempotency_retention_hours),
            interval=timedelta(seconds=settings.housekeeping_interval_seconds),
        ),
        nodes=nodes,
        keys=keys,
        database=database,
        blobs=blobs,
        secrets=database.sealed,
        limits=_limits(settings),
        trusted_proxies=settings.trusted_proxies,
    )


def _limits(settings: Settings) -> ClientLimits:
    # Node-local by design (services/limits.py says why; README "Limits").
    return ClientLimits(
        requests=Rate(settings.rate_limit_per_second, settings.rate_limit_burst),
        uploads=Rate(settings.upload_rate_per_second, settings.upload_rate_burst),
        concurrent_uploads=settings.max_concurrent_uploads,
        fetch_refusals=Rate(settings.fetch_refusals_per_hour / 3600, settings.fetch_refusal_burst),
    )


def prepare(settings: Settings, *, serving: bool) -> Services:
    """Make the data dir and database ready, then build the services.

    Creates private directories, migrates the schema, creates the first signing key and
    the link secret. ``serving`` marks the one process that will serve HTTP on this data
    dir (``berkas serve`` holds its lock): only it sweeps what an earlier crash left
    (partial spool files, temporary blobs, blobs whose row never committed) and runs the
    first housekeeping round; an admin command beside a live server must not delete that
    server's uploads in flight.
    """
    # Everything this process creates (database, keys, blobs, spool) is private: the
    # database holds every client's secret (STYLE: refuse insecure set-ups at start).
    os.umask(0o077)
    private_dir(settings.data_dir)
    private_dir(settings.spool_dir)
    if serving:
        _warn_wildcard_links(settings)
        removed = cleanup_stale(settings.spool_dir)
        if removed:
            log.warning("removed %d partial upload(s) left by an earlier crash", removed)
    _node_identity(settings, create=True)
    database = SqlDatabase.from_url(
        settings.resolved_database_url, sealer=_sealer(settings, create=True)
    )
    node_id: int | None = None
    try:
        database.migrate()
        if serving:
            # Before anything is swept or minted: a node number another live node holds
            # is refused here, naming that node.
            wanted = settings.node_id if isinstance(settings.node_id, int) else None
            node_id = _node_leases(settings, database, SystemClock()).claim(wanted)
        _prepare_secrets(settings, database)
    finally:
        database.close()
    local = _local_root(settings.resolved_storage_url)
    if local is not None:
        store = LocalBlobStore(local, create=True)
        if serving:
            removed = store.cleanup_temp()
            if removed:
                log.warning("removed %d temporary blob(s) left by an earlier crash", removed)
    if _is_s3(settings.resolved_storage_url):
        # A missing bucket or a wrong endpoint stops start-up here, naming both, rather
        # than failing every upload later with a bare storage_unavailable.
        _s3_store(settings).require_bucket()
    services = build(settings, node_id=node_id)
    if serving:
        try:
            orphans = services.uploads.recover_orphans()
            if orphans:
                log.warning("removed %d stored blob(s) whose upload never committed", orphans)
            services.housekeeping.run_once()
        except BaseException:
            services.close()
            raise
    return services


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
    _check_existing(settings)
    return build(settings)


def _check_existing(settings: Settings) -> None:
    """Raise ``ValueError`` unless the data dir and a current database exist (see
    ``open_existing``); touches nothing."""
    url = settings.resolved_database_url
    path = sqlite_file(url)  # first: an unsupported URL is a configuration error
    if not settings.data_dir.is_dir():
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


def secrets_status(settings: Settings) -> dict[str, object]:
    """What ``berkas secrets status`` prints: the master keys this process holds, how many
    secrets of each kind each master key id seals, how old the sealing key is against
    the rotation schedule, which older keys are still held and whether anything still
    needs them, and any value found in clear.

    Opens no secret, so it works when a needed master key is missing (the case it is
    there to diagnose); creates nothing.
    """
    _check_existing(settings)
    sealer = _sealer(settings, create=False)
    database = SqlDatabase.from_url(settings.resolved_database_url, sealer=sealer)
    try:
        sealed = database.sealed.by_master_key()
        ages = database.sealed.master_key_ages()
        clear = database.sealed.clear_values()
        legacy = database.sealed.legacy_clear()
        backlog = database.files.backlog()
    finally:
        database.close()
    current = sealer.current.kid
    first_used = ages.get(current)
    now = SystemClock().now()
    age_days = None if first_used is None else (now - first_used).days
    still_sealing = {
        kid: sum(counts.get(kid, 0) for counts in sealed.values())
        for kid in {kid for counts in sealed.values() for kid in counts}
        if kid not in (current, "clear")
    }
    return {
        "master_keys": list(sealer.kids),
        "sealing_with": current,
        "sealed": sealed,
        "sealing_key_first_used": None if first_used is None else iso8601(first_used),
        "sealing_key_age_days": age_days,
        "rotate_every_days": settings.master_key_rotation_days,
        "rotation_due": age_days is not None and age_days >= settings.master_key_rotation_days,
        # Older keys this process still holds: once nothing needs them (rekey done),
        # destroying them is what makes old backups unreadable.
        "older_keys_held": [kid for kid in sealer.kids if kid != current],
        "values_under_older_keys": still_sealing,
        "clear_values": [f"{column} of {row!r}" for column, row in clear],
        "legacy_clear_client_secrets": legacy,
        # Documents older than the current policy; `berkas files upgrade` brings them up
        # to it (README, Upgrading).
        **_documents_behind(settings, backlog),
    }


def _documents_behind(settings: Settings, backlog: UpgradeBacklog) -> dict[str, int]:
    return {
        "documents_not_encrypted": backlog.in_clear if settings.encrypts_at_rest else 0,
        "documents_not_stripped": backlog.unchecked,
        "documents_without_retention": sum(
            count
            for category, count in backlog.without_retention.items()
            if _retention(settings, category) is not None
        ),
    }


def status_problems(report: dict[str, object]) -> list[str]:
    """What ``berkas secrets status --check`` fails on, one sentence each."""
    problems = []
    if report["rotation_due"]:
        problems.append(
            f"the sealing master key is {report['sealing_key_age_days']} days old; the "
            f"schedule is {report['rotate_every_days']} days (BERKAS_MASTER_KEY_ROTATION_DAYS): "
            "rotate it (README, Secrets at rest and the master key)"
        )
    held = report["older_keys_held"]
    needed = report["values_under_older_keys"]
    if needed:
        problems.append(
            f"values are still sealed under older master keys {needed}: run `berkas secrets rekey`"
        )
    elif held:
        problems.append(
            f"older master keys {held} are still configured but nothing needs them: remove "
            "them from every node and destroy them, or old backups stay readable"
        )
    if report["clear_values"]:
        problems.append(f"values in clear in sealed columns: {report['clear_values']}")
    return problems


def seal_legacy(settings: Settings) -> list[str]:
    """``berkas secrets seal-legacy``: migrate, then seal the client secrets an older
    release stored in clear (the ones migration 0008 listed) and nothing else; once.
    Returns the client ids sealed; ``SealingError`` when there is nothing to do or it ran
    before."""
    path = sqlite_file(settings.resolved_database_url)
    if not settings.data_dir.is_dir() or (path is not None and not path.is_file()):
        raise ValueError(
            f"no berkas data dir or database at {settings.data_dir}; seal-legacy upgrades "
            "an existing one (pass --data-dir)"
        )
    os.umask(0o077)
    database = SqlDatabase.from_url(
        settings.resolved_database_url, sealer=_sealer(settings, create=True)
    )
    try:
        database.migrate()
        sealed = database.sealed.seal_legacy(SystemClock().now())
        # The clear values must not linger in the SQLite file's free pages or its WAL.
        database.compact()
    finally:
        database.close()
    return sealed


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
            data_keys=SealedDataKeys(_sealer(settings, create=False)),
            encrypt=settings.encrypts_at_rest,
            retention=lambda category: _retention(settings, category),
            keep_metadata=settings.keep_metadata_categories,
            image_limits=ImageLimits(
                max_pixels=settings.max_image_pixels, max_side=settings.max_image_side
            ),
        )
    finally:
        services.close()


def database_shown(settings: Settings) -> str:
    """The database URL as it may be printed (any password masked)."""
    return display_url(settings.resolved_database_url)


def listen(settings: Settings) -> socket.socket:
    """The bound, listening socket ``serve`` hands to uvicorn; raises ``CannotListen``."""
    return listener.listen(settings.host, settings.port)


def listen_metrics(settings: Settings) -> socket.socket | None:
    """The metrics listener's socket; None when /metrics is on the partner port."""
    where = settings.metrics_listener
    return None if where is None else listener.listen(*where)


def lock_data_dir(settings: Settings) -> DataDirLock:
    """Take the one-server lock on the data dir (creating the dir, 0700, if it is new).

    Raises ``DataDirInUse`` naming the pid of the serve that holds it. Hold the lock for
    the life of the process: it is what lets ``prepare(serving=True)`` sweep the spool.
    """
    # Private from the start (as in prepare): the dir will hold every client's secret.
    os.umask(0o077)
    # No chmod of an existing dir here (prepare does that once the lock is ours): a
    # refused second server must leave the first one's data dir exactly as it was.
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return datadir.lock(settings.data_dir)


def ensure_demo_client(services: Services, settings: Settings) -> Client | None:
    """On a brand-new data dir, create one demo client (once, ever)."""
    marker = settings.data_dir / DEMO_MARKER
    wanted = settings.demo_client
    if wanted is None:
        wanted = settings.serves_loopback_only
    if not wanted or marker.exists():
        return None
    client = None
    if not services.clients.list():
        client = services.clients.create()
    marker.write_text("demo client handled; delete this file to get another\n")
    return client


def private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700), or make an existing one private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        # An existing directory made by hand (mkdir -m 755) would expose the database of
        # client secrets; it is ours, so it is made private rather than refused.
        log.warning("making %s private (mode 0700)", path)
        path.chmod(0o700)


def _retention(settings: Settings, category: str) -> timedelta | None:
    """How long ``category``'s documents are kept; None: until deleted (README)."""
    days = settings.retention_days_by_category.get(category, settings.retention_days)
    return timedelta(days=days) if days > 0 else None


def _node_identity(settings: Settings, *, create: bool) -> str:
    # Which data dir a lease belongs to: a node restarting on its data dir after a crash
    # (the data-dir lock proves the old process is gone) takes its lease straight back.
    path = settings.data_dir / NODE_IDENTITY
    if not path.exists():
        if not create:
            return f"unprepared-{secrets.token_hex(8)}"
        with contextlib.suppress(FileExistsError):  # another process created it first
            atomic_write(path, secrets.token_hex(16).encode(), exclusive=True)
    return path.read_text().strip()


def _node_leases(settings: Settings, database: SqlDatabase, clock: Clock) -> NodeLeases:
    return NodeLeases(
        database.leases,
        clock,
        holder=_lease_holder(settings),
        label=f"host {socket.gethostname()} pid {os.getpid()} data dir {settings.data_dir}",
    )


def _lease_holder(settings: Settings) -> str:
    # The data dir's identity, on this host, at this path. Only the same node restarting
    # (the data-dir flock proves the old process is gone) may take a live lease back; a
    # data dir copied to another host or path (a snapshot, a baked image) is another
    # node, so it must not inherit the lease the original still holds.
    where = f"{_node_identity(settings, create=False)}|{socket.gethostname()}|{settings.data_dir}"
    return hashlib.sha256(where.encode()).hexdigest()[:32]


def _stale_after(settings: Settings) -> timedelta:
    # Longer than any request can run (a URL fetch is the slowest step), with a margin.
    return timedelta(seconds=settings.fetch_total_timeout + 120)


def _key_ring(settings: Settings, store: KeyStore, clock: Clock, *, create: bool) -> KeyRing:
    return KeyRing.open(
        store,
        clock=clock,
        # A retired key verifies for as long as a token it signed can live, plus the
        # leeway, plus a margin for nodes that signed with it before their next key sync.
        max_token_lifetime=timedelta(minutes=settings.token_max_minutes)
        + timedelta(seconds=LEEWAY_SECONDS)
        + _KEY_SYNC_MARGIN,
        bits=settings.rsa_key_bits,
        create=create,
    )


def _sealer(settings: Settings, *, create: bool) -> Sealer:
    """The master keys, from BERKAS_MASTER_KEY, BERKAS_MASTER_KEY_FILE or the data dir."""
    previous = [
        parse_master_key(part, where="BERKAS_MASTER_KEY_PREVIOUS")
        for part in (
            settings.master_key_previous.get_secret_value().split(",")
            if settings.master_key_previous is not None
            else []
        )
        if part.strip()
    ]
    if settings.master_key is not None:
        current = parse_master_key(
            settings.master_key.get_secret_value(), where="BERKAS_MASTER_KEY"
        )
        return Sealer(current, previous, source="BERKAS_MASTER_KEY")
    path = settings.master_key_file
    if path is None:
        # Embedded default: one command on a laptop (README). A fleet sets the same
        # BERKAS_MASTER_KEY on every node instead; prepare warns when it does not.
        path = settings.default_master_key_file
        if not path.exists():
            if not create:
                raise ValueError(
                    f"no master key at {path}; `berkas serve` or `berkas db migrate` creates "
                    "it (or set BERKAS_MASTER_KEY)"
                )
            if create_key_file(path):
                _warn_new_master_key(settings, path)
    first, *older = read_key_file(path)
    return Sealer(first, [*older, *previous], source=str(path))


def _warn_new_master_key(settings: Settings, path: Path) -> None:
    # Said once, by the process that created it (first writer wins): an upgrade from a
    # release before sealed secrets makes this file silently otherwise, and a backup
    # routine written for that release copies the database and the blobs only.
    log.warning(
        "created the master key %s: it opens every partner secret, signing key and "
        "document data key in the database (%s). Back it up now, apart from the database "
        "and the store (%s): a backup without it loses every secret, one that keeps it "
        "beside them gives them away (README, Secrets at rest and the master key)",
        path,
        database_shown(settings),
        settings.resolved_storage_url,  # file:// or s3://bucket/prefix: no credentials
    )


def _prepare_secrets(settings: Settings, database: SqlDatabase) -> None:
    """Secrets into the database, sealed: the first signing key and the link secret, an
    older data dir's key directory and link-secret file; data keys rebound to their rows.

    A value in clear in any sealed column stops the start, naming it: nothing here seals
    what it finds in the database (README "Secrets at rest and the master key").
    """
    now = SystemClock().now()
    if (
        database.dialect != "sqlite"
        and settings.master_key is None
        and settings.master_key_file is None
    ):
        log.warning(
            "the master key is this node's own file %s; every other node of the fleet "
            "needs the same key: set BERKAS_MASTER_KEY (or BERKAS_MASTER_KEY_FILE) on all",
            settings.default_master_key_file,
        )
    refuse_clear_values(database)
    # The link secret first: opening it proves this node's master key is the one the
    # database was sealed with before this node writes anything sealed (a node with the
    # wrong key must not leave rows no other node can open).
    legacy = settings.link_secret_file
    if legacy.exists():
        value = legacy.read_text().strip().encode()
        if database.service_secrets.ensure(LINK_SECRET_NAME, value, now) != value:
            log.warning(
                "the database already has a link secret; links signed with %s stop working",
                legacy,
            )
        legacy.unlink()  # stored (committed) first: a crash in between imports again
        log.warning("moved the link secret from %s into the database", legacy)
    else:
        database.service_secrets.ensure(LINK_SECRET_NAME, secrets.token_hex(32).encode(), now)
    imported = import_key_directory(database.signing_keys, settings.keys_dir, now)
    if imported:
        log.warning(
            "moved %d signing key(s) from %s into the database", imported, settings.keys_dir
        )
    _key_ring(settings, database.signing_keys, SystemClock(), create=True)
    database.sealed.record_master_key(now)
    rebound = database.sealed.rebind_data_keys()
    if rebound:
        log.warning(
            "bound %d document data key(s) to their file's owner, object key and link generation",
            rebound,
        )


def refuse_clear_values(database: SqlDatabase) -> None:
    """Raise ``ValueError`` naming every value in clear in a sealed column.

    berkas seals every value it writes there, so a clear one was written by an older
    release (client secrets before 0004: `berkas secrets seal-legacy` seals those, once)
    or into the database without the master key; the latter is never sealed or used.
    """
    found = database.sealed.clear_values()
    if not found:
        return
    legacy = set(database.sealed.legacy_clear())
    planted = [
        (column, row)
        for column, row in found
        if not (column == "clients.secret_key" and row in legacy)
    ]
    problems = [clear_value_message(column, row) for column, row in planted]
    if legacy:
        problems.append(
            f"{len(legacy)} client secret key(s) ({', '.join(sorted(legacy))}) were stored in "
            "clear by a berkas release before secrets were sealed (listed when this "
            "database was upgraded to schema 0008); run `berkas secrets seal-legacy` once "
            "to seal them (README, Upgrading)"
        )
    raise ValueError("; ".join(problems))


def _local_root(url: str) -> Path | None:
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    # file:///abs/path only: a host part (file://relative/path) would silently drop
    # the first segment and store documents somewhere else entirely.
    if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
        raise ValueError(f"BERKAS_STORAGE_URL {url!r} must name an absolute path: file:///abs/path")
    return Path(parsed.path)


def init_storage(settings: Settings) -> str:
    """Create the blob store's bucket or directory if it is missing (idempotent); returns
    what was done, for ``berkas storage init``. Raises ``Unavailable`` naming the store."""
    url = settings.resolved_storage_url
    if _is_s3(url):
        store = _s3_store(settings)
        where = f"S3 bucket {store.location.bucket!r} at {store.location.endpoint_shown}"
        return f"created {where}" if store.create_bucket() else f"{where} already exists"
    local = _local_root(url)
    if local is not None:
        existed = local.is_dir()
        LocalBlobStore(local, create=True)
        return f"storage directory {local} {'already exists' if existed else 'created'}"
    return f"storage {url} needs no set-up"


def _is_s3(url: str) -> bool:
    return urlparse(url).scheme == "s3"


def _s3_store(settings: Settings) -> S3BlobStore:
    try:
        # Imported only for s3:// so that boto3 stays an optional extra.
        from berkas.adapters.storage.s3 import S3BlobStore, S3Location  # noqa: PLC0415
    except ImportError as exc:
        raise ValueError(
            f"BERKAS_STORAGE_URL {settings.resolved_storage_url!r} needs boto3, which is not "
            f"installed ({exc}); pip install 'berkas[s3]'"
        ) from None
    bucket, prefix = s3_bucket_and_prefix(settings.resolved_storage_url)
    return S3BlobStore(
        S3Location(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            addressing_style=settings.s3_addressing_style,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )
    )


def _presigner(settings: Settings, blobs: BlobStore) -> LinkPresigner | None:
    if settings.link_mode != "presigned":
        return None
    # Config allows presigned only with an s3:// store, whose adapter signs its own URLs.
    if not isinstance(blobs, LinkPresigner):
        raise ValueError("BERKAS_LINK_MODE=presigned needs an S3 store (BERKAS_STORAGE_URL=s3://…)")
    return blobs


def _blob_store(settings: Settings) -> BlobStore:
    url = settings.resolved_storage_url
    local = _local_root(url)
    if local is not None:
        return LocalBlobStore(local, create=False)
    if urlparse(url).scheme == "memory":
        return MemoryBlobStore()
    if _is_s3(url):
        return _s3_store(settings)
    raise ValueError(
        f"BERKAS_STORAGE_URL scheme {urlparse(url).scheme!r} is not supported; "
        "use file:///abs/path or s3://bucket/prefix"
    )


def _fetcher(settings: Settings) -> Fetcher | None:
    if not settings.fetch_enabled:
        return None
    policy = EgressPolicy(
        allow_networks=settings.fetch_allow_networks,
        allow_ports=frozenset(settings.fetch_allow_ports),
        max_redirects=settings.fetch_max_redirects,
        connect_timeout=settings.fetch_connect_timeout,
        read_timeout=settings.fetch_read_timeout,
        total_timeout=settings.fetch_total_timeout,
    )
    return GuardedFetcher(policy)


def _link_secret(settings: Settings, database: SqlDatabase) -> bytes:
    if settings.link_secret is not None:
        return settings.link_secret.encode()
    # Shared by every node through the database (DESIGN 5); never any client's secret.
    value = database.service_secrets.get(LINK_SECRET_NAME)
    if value is None:
        raise ValueError(
            "no link secret in the database yet; `berkas serve` or `berkas db migrate` "
            "creates it (or set BERKAS_LINK_SECRET)"
        )
    return value
