"""``MemoryDatabase``: the repositories over one set of in-memory tables."""

from __future__ import annotations

from berkas.adapters.db.memory.audit import MemoryAuditLog
from berkas.adapters.db.memory.clients import MemoryClientRepository
from berkas.adapters.db.memory.files import MemoryFileRepository
from berkas.adapters.db.memory.leases import MemoryNodeLeaseRepository, MemoryTaskLeases
from berkas.adapters.db.memory.replays import MemoryReplayRepository
from berkas.adapters.db.memory.tables import _Tables
from berkas.core.ports import (
    AuditLog,
    ClientRepository,
    FileRepository,
    NodeLeaseRepository,
    ReplayRepository,
    TaskLeaseRepository,
)


class MemoryDatabase:
    """The in-memory metadata store (implements ``core.ports.Database``)."""

    def __init__(self) -> None:
        tables = _Tables()
        self.clients: ClientRepository = MemoryClientRepository(tables)
        self.files: FileRepository = MemoryFileRepository(tables)
        self.replays: ReplayRepository = MemoryReplayRepository(tables)
        self.leases: NodeLeaseRepository = MemoryNodeLeaseRepository(tables)
        self.events: AuditLog = MemoryAuditLog(tables)
        self.tasks: TaskLeaseRepository = MemoryTaskLeases(tables)

    def check(self) -> None:
        """Always reachable."""

    def write_lock_waits(self) -> None:
        """No shared write lock (a Python lock per table, never contended for long)."""

    def close(self) -> None:
        """Nothing to release."""
