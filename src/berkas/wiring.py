"""The composition root: settings -> adapters -> services. Nothing else picks an implementation."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from berkas.adapters.clock import SystemClock
from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.durable import atomic_write
from berkas.adapters.fetch import GuardedFetcher
from berkas.adapters.keys import KeyRing
from berkas.adapters.storage.local import LocalBlobStore
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.config import Settings
from berkas.core.catalogue import Catalogue
from berkas.core.content import ImageLimits
from berkas.core.egress import EgressPolicy
from berkas.core.ids import IdMinter
from berkas.core.links import LinkSigner
from berkas.core.models import Client
from berkas.core.ports import BlobStore, Fetcher
from berkas.services.clients import ClientService
from berkas.services.files import FileService
from berkas.services.housekeeping import Housekeeping
from berkas.services.ingest import cleanup_stale
from berkas.services.links import LinkService
from berkas.services.requests import IdempotentUploads, RequestVerifier
from berkas.services.requirements import RequirementsService
from berkas.services.tokens import LEEWAY_SECONDS, TokenService
from berkas.services.uploads import UploadService

log = logging.getLogger(__name__)

DEMO_MARKER = ".demo-client-created"


@dataclass
class Container:
    """Everything a process needs, built once from settings."""

    settings: Settings
    database: SqlDatabase
    blobs: BlobStore
    keys: KeyRing
    catalogue: Catalogue
    clients: ClientService
    tokens: TokenService
    requests: RequestVerifier
    requirements: RequirementsService
    uploads: UploadService
    files: FileService
    idempotency: IdempotentUploads
    housekeeping: Housekeeping
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.database.close()


def build(settings: Settings, *, serving: bool = False) -> Container:
    """Create directories, migrate the database, load keys and build the services.

    ``serving`` marks the process that will serve HTTP: only it sweeps the partial files
    an earlier crash left behind. An admin command run beside a live server must not
    delete that server's uploads in flight.
    """
    # Everything this process creates (database, keys, blobs, spool) is private: the
    # database holds every client's secret (STYLE: refuse insecure set-ups at start).
    os.umask(0o077)
    _private_dir(settings.data_dir)
    _private_dir(settings.spool_dir)
    if serving:
        removed = cleanup_stale(settings.spool_dir)
        if removed:
            log.warning("removed %d partial upload(s) left by an earlier crash", removed)
    clock = SystemClock()

    database = SqlDatabase.from_url(settings.resolved_database_url)
    database.migrate()
    blobs = _blob_store(settings.resolved_storage_url, sweep=serving)
    keys = KeyRing.open(
        settings.keys_dir,
        clock=clock.now,
        max_token_lifetime=timedelta(minutes=settings.token_max_minutes)
        + timedelta(seconds=LEEWAY_SECONDS),
        bits=settings.rsa_key_bits,
    )
    # Keys whose every token has expired leave the ring and JWKS, and Request-Id records
    # past their retention are forgotten: at start, then periodically while serving.
    housekeeping = Housekeeping(
        database.replays,
        keys,
        clock,
        retention=timedelta(hours=settings.replay_retention_hours),
        interval=timedelta(seconds=settings.housekeeping_interval_seconds),
    )
    housekeeping.run_once()
    catalogue = Catalogue.load(settings.catalogue_file)
    links = LinkService(
        LinkSigner(_link_secret(settings)),
        clock,
        base_url=settings.base_url,
        ttl=timedelta(seconds=settings.link_ttl_seconds),
    )
    uploads = UploadService(
        catalogue=catalogue,
        files=database.files,
        blobs=blobs,
        minter=IdMinter(settings.node_id, lambda: int(clock.now().timestamp() * 1000)),
        clock=clock,
        links=links,
        spool_dir=settings.spool_dir,
        image_limits=ImageLimits(
            max_pixels=settings.max_image_pixels, max_side=settings.max_image_side
        ),
        key_prefix=settings.key_prefix,
        env=settings.env,
        node_id=settings.node_id,
        fetcher=_fetcher(settings),
    )
    if serving:
        orphans = uploads.recover_orphans()
        if orphans:
            log.warning("removed %d stored blob(s) whose upload never committed", orphans)
    return Container(
        settings=settings,
        database=database,
        blobs=blobs,
        keys=keys,
        catalogue=catalogue,
        clients=ClientService(database.clients, clock),
        tokens=TokenService(
            keys,
            database.clients,
            clock,
            default_minutes=settings.token_default_minutes,
            max_minutes=settings.token_max_minutes,
        ),
        requests=RequestVerifier(
            database.clients,
            database.replays,
            clock,
            window=timedelta(seconds=settings.timestamp_window_seconds),
            stale_after=_stale_after(settings),
        ),
        requirements=RequirementsService(catalogue),
        uploads=uploads,
        files=FileService(database.files, blobs, links),
        idempotency=IdempotentUploads(database.replays, clock, stale_after=_stale_after(settings)),
        housekeeping=housekeeping,
    )


def _stale_after(settings: Settings) -> timedelta:
    # Longer than any request can run (a URL fetch is the slowest step), with a margin.
    return timedelta(seconds=settings.fetch_total_timeout + 120)


def ensure_demo_client(container: Container) -> Client | None:
    """On a brand-new data dir, create one demo client (once, ever)."""
    marker = container.settings.data_dir / DEMO_MARKER
    wanted = container.settings.demo_client
    if wanted is None:
        wanted = container.settings.serves_loopback_only
    if not wanted or marker.exists():
        return None
    client = None
    if not container.clients.list():
        client = container.clients.create()
    marker.write_text("demo client handled; delete this file to get another\n")
    return client


def _blob_store(url: str, *, sweep: bool) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        # file:///abs/path only: a host part (file://relative/path) would silently drop
        # the first segment and store documents somewhere else entirely.
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise ValueError(
                f"BERKAS_STORAGE_URL {url!r} must name an absolute path: file:///abs/path"
            )
        store = LocalBlobStore(Path(parsed.path))
        if sweep:
            removed = store.cleanup_temp()
            if removed:
                log.warning("removed %d temporary blob(s) left by an earlier crash", removed)
        return store
    if parsed.scheme == "memory":
        return MemoryBlobStore()
    raise ValueError(
        f"BERKAS_STORAGE_URL scheme {parsed.scheme!r} is not supported yet; use file:///abs/path"
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


def _link_secret(settings: Settings) -> bytes:
    if settings.link_secret is not None:
        return settings.link_secret.encode()
    # Embedded mode: a random secret kept beside the data, never any client's secret.
    # Several nodes must share BERKAS_LINK_SECRET instead (README, "Scaling out").
    path = settings.link_secret_file
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it first
            atomic_write(path, secrets.token_hex(32).encode(), exclusive=True)
    return path.read_text().strip().encode()


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        # An existing directory made by hand (mkdir -m 755) would expose the database of
        # client secrets; it is ours, so it is made private rather than refused.
        log.warning("making %s private (mode 0700)", path)
        path.chmod(0o700)
