"""The composition root: settings -> adapters -> services. Nothing else picks an
implementation (the import contracts in pyproject.toml hold every ``berkas.wiring``
module to that).

- ``build``: constructs the services from a small factory per adapter family
  (``storage``: the blob store; ``secrets``: master keys, key ring, link secret;
  ``datadir``: the data dir, the node identity and leases); it changes nothing.
- ``startup``: the chores ``serve`` and the admin verbs run before ``build``
  (``prepare``), what read-only verbs use (``open_existing``), the socket and lock
  ``serve`` holds first, the demo client.
"""

from __future__ import annotations

from berkas.adapters.datadir import DataDirInUse
from berkas.adapters.listen import CannotListen
from berkas.wiring.build import build
from berkas.wiring.datadir import (
    database_shown,
    needs_data_dir,
    private_dir,
    store_shown,
    uses_data_dir,
)
from berkas.wiring.secrets import seal_legacy, secrets_status, status_problems
from berkas.wiring.startup import (
    DEMO_MARKER,
    ensure_demo_client,
    listen,
    listen_metrics,
    lock_data_dir,
    open_existing,
    prepare,
    prepare_supervisor,
    prepare_worker,
    upgrading,
)
from berkas.wiring.storage import init_storage

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
    "listen_metrics",
    "lock_data_dir",
    "needs_data_dir",
    "open_existing",
    "prepare",
    "prepare_supervisor",
    "prepare_worker",
    "private_dir",
    "seal_legacy",
    "secrets_status",
    "status_problems",
    "store_shown",
    "upgrading",
    "uses_data_dir",
]
