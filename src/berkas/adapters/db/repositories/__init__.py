"""The SQL repositories over one SQLAlchemy engine, one module per aggregate.

Vendor exceptions stop here: lost connections become ``Unavailable``, key clashes
``Conflict``. Secrets (client secret keys, signing keys, the link secret) are sealed
under the master key on the way in and opened on the way out (adapters/sealing.py).
"""

from berkas.adapters.db.repositories.audit import SqlAuditLog
from berkas.adapters.db.repositories.base import translate_errors
from berkas.adapters.db.repositories.clients import SqlClientRepository
from berkas.adapters.db.repositories.files import SqlFileRepository
from berkas.adapters.db.repositories.keys import SqlKeyStore
from berkas.adapters.db.repositories.leases import SqlNodeLeaseRepository, SqlTaskLeases
from berkas.adapters.db.repositories.replays import SqlReplayRepository
from berkas.adapters.db.repositories.sealed import SqlSealedValues
from berkas.adapters.db.repositories.secrets import SqlServiceSecrets

__all__ = [
    "SqlAuditLog",
    "SqlClientRepository",
    "SqlFileRepository",
    "SqlKeyStore",
    "SqlNodeLeaseRepository",
    "SqlReplayRepository",
    "SqlSealedValues",
    "SqlServiceSecrets",
    "SqlTaskLeases",
    "translate_errors",
]
