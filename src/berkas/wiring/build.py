"""``build``: settings -> adapters -> services; it constructs and changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from berkas.adapters.change_marker import CLIENTS_CHANGED, ChangeMarker
from berkas.adapters.clock import SystemClock
from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.fetch import GuardedFetcher
from berkas.adapters.sealing import SealedDataKeys
from berkas.config import Settings
from berkas.core.catalogue import Catalogue
from berkas.core.content import ImageLimits
from berkas.core.egress import EgressPolicy
from berkas.core.ids import IdMinter
from berkas.core.links import LinkSigner
from berkas.core.ports import Fetcher
from berkas.services.bundle import Services
from berkas.services.client_cache import CachedClients
from berkas.services.clients import ClientService
from berkas.services.documents import DocumentStore, KeyLayout
from berkas.services.files import FileService
from berkas.services.housekeeping import Housekeeping
from berkas.services.idempotency import IdempotentUploads
from berkas.services.limits import ClientLimits, Rate
from berkas.services.links import LinkService
from berkas.services.requirements import RequirementsService
from berkas.services.signed import RequestVerifier
from berkas.services.tokens import TokenService
from berkas.services.uploads import UploadService
from berkas.wiring.datadir import (
    node_identity,
    node_leases,
    stale_after,
    uses_data_dir,
    worker_spool_dir,
)
from berkas.wiring.secrets import key_ring, link_secret, sealer
from berkas.wiring.storage import blob_store, presigner

if TYPE_CHECKING:
    pass


def build(settings: Settings, *, node_id: int | None = None, worker: int | None = None) -> Services:
    """Construct adapters and services from ``settings``; creates and changes nothing.

    ``node_id`` is the number ``prepare`` leased for a serving node; without it the
    configured number is used (0 for ``auto``: an admin command mints no ids). ``worker``:
    the slot of a worker process (its lease holder and spool, docs/design.md 5.6). A data dir
    that ``prepare`` never made ready (no keys, no link secret) is refused here with a
    message saying what is missing.
    """
    clock = SystemClock()
    master = sealer(settings, create=False)
    database = SqlDatabase.from_url(settings.resolved_database_url, sealer=master)
    # Opening needs only the master key: rows encrypted earlier stay readable after
    # BERKAS_ENCRYPT_AT_REST is switched off.
    data_keys = SealedDataKeys(master)
    try:
        keys = key_ring(settings, database.signing_keys, clock, create=False)
        signing_secret = link_secret(settings, database)
    except BaseException:
        database.close()
        raise
    nodes = node_leases(settings, database, clock, worker=worker)
    if node_id is not None:
        nodes.node_id = node_id
    else:
        node_id = settings.node_id if isinstance(settings.node_id, int) else 0
    blobs = blob_store(settings)
    catalogue = Catalogue.load(settings.catalogue_file)
    links = LinkService(
        LinkSigner(signing_secret),
        clock,
        base_url=settings.base_url,
        ttl=timedelta(seconds=settings.link_ttl_seconds),
        presigner=presigner(settings, blobs),
    )
    stale = stale_after(settings)
    documents = DocumentStore(
        files=database.files,
        blobs=blobs,
        clock=clock,
        node_id=node_id,
        layout=KeyLayout(
            minter=IdMinter(node_id, lambda: int(clock.now().timestamp() * 1000)),
            key_prefix=settings.key_prefix,
            env=settings.env,
            node_id=node_id,
        ),
        data_keys=data_keys if settings.encrypts_at_rest else None,
        retention=settings.retention,
    )
    uploads = UploadService(
        catalogue=catalogue,
        documents=documents,
        links=links,
        idempotency=IdempotentUploads(database.replays, clock, stale_after=stale),
        spool_dir=worker_spool_dir(settings, worker),
        image_limits=ImageLimits(
            max_pixels=settings.max_image_pixels, max_side=settings.max_image_side
        ),
        fetcher=fetcher(settings),
        encrypt=settings.encrypts_at_rest,
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
    # One cache for the three that read clients, so a change made through ClientService
    # in this process is seen by the next request at once (docs/design.md 2.1).
    # No data dir (a fleet's admin command, README "Admin on a fleet"): no marker to
    # touch; the nodes see the change within the cache's bound.
    changes = ChangeMarker(settings.data_dir / CLIENTS_CHANGED) if uses_data_dir(settings) else None
    clients = CachedClients(database.clients, changes=changes)
    return Services(
        clients=ClientService(clients, clock, grace=timedelta(hours=settings.secret_grace_hours)),
        tokens=TokenService(
            keys,
            clients,
            clock,
            default_minutes=settings.token_default_minutes,
            max_minutes=settings.token_max_minutes,
        ),
        signed=RequestVerifier(
            clients,
            database.replays,
            clock,
            window=timedelta(seconds=settings.timestamp_window_seconds),
            stale_after=stale,
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
            holder=node_identity(settings, create=False) + f"#{node_id}",
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


def fetcher(settings: Settings) -> Fetcher | None:
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
