"""``MemoryDatabase``: the metadata store in process memory, for unit tests of use cases.

Behaves like ``SqlDatabase`` (same contract suite) but keeps nothing across restarts.
"""

from berkas.adapters.db.memory.audit import MemoryAuditLog
from berkas.adapters.db.memory.clients import MemoryClientRepository
from berkas.adapters.db.memory.database import MemoryDatabase
from berkas.adapters.db.memory.files import MemoryFileRepository
from berkas.adapters.db.memory.keys import MemoryKeyStore
from berkas.adapters.db.memory.leases import MemoryNodeLeaseRepository, MemoryTaskLeases
from berkas.adapters.db.memory.replays import MemoryReplayRepository

__all__ = [
    "MemoryAuditLog",
    "MemoryClientRepository",
    "MemoryDatabase",
    "MemoryFileRepository",
    "MemoryKeyStore",
    "MemoryNodeLeaseRepository",
    "MemoryReplayRepository",
    "MemoryTaskLeases",
]
