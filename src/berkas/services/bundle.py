"""The typed bundle the HTTP app and the CLI work with: use cases and the ports they need.

``berkas.wiring`` fills it; nothing that receives it knows which adapters are inside.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from berkas.core.egress import IPNetwork
from berkas.core.keys import ManagedKeys
from berkas.core.ports import BlobStore, Database, HealthCheck, SealedSecrets
from berkas.services.clients import ClientService
from berkas.services.files import FileService
from berkas.services.housekeeping import Housekeeping
from berkas.services.limits import ClientLimits
from berkas.services.nodes import NodeLeases
from berkas.services.requirements import RequirementsService
from berkas.services.signed import RequestVerifier
from berkas.services.tokens import TokenService
from berkas.services.uploads import UploadService


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a process serves or administers with, built once from settings."""

    clients: ClientService
    tokens: TokenService
    signed: RequestVerifier
    requirements: RequirementsService
    uploads: UploadService
    files: FileService
    housekeeping: Housekeeping
    nodes: NodeLeases
    keys: ManagedKeys
    database: Database
    blobs: BlobStore
    secrets: SealedSecrets
    limits: ClientLimits
    # Reverse proxies whose X-Forwarded-For names the client (BERKAS_TRUSTED_PROXIES).
    trusted_proxies: tuple[IPNetwork, ...] = ()

    @property
    def health(self) -> Mapping[str, HealthCheck]:
        """What /readyz asks, by the name it reports. "storage" covers the blob store and
        this node's spool, where every upload lands first (a full spool disk is full
        storage to a partner, whichever store keeps the bytes)."""
        return {"database": self.database, "storage": _Storage(self.blobs, self.uploads)}

    def close(self) -> None:
        """Release connections (the database pool)."""
        self.database.close()


@dataclass(frozen=True, slots=True)
class _Storage:
    blobs: BlobStore
    uploads: UploadService

    def check(self) -> None:
        self.blobs.check()
        self.uploads.check_spool()
