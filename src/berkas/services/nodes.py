"""Node identity (docs/design.md 5.6): a serving node leases its node number in the shared database.

Ids embed the node number (docs/design.md 2.4), so two live nodes with one number could mint the
same id in the same millisecond; the lease makes that a refusal at start instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from berkas.core.codes import Code
from berkas.core.errors import Conflict
from berkas.core.ids import MAX_NODE
from berkas.core.models import NodeLease
from berkas.core.ports import Clock, NodeLeaseRepository
from berkas.core.wire import iso8601

log = logging.getLogger(__name__)

# A lease outlives its last heartbeat by this long: a crashed node's number is free again
# within it, while a live node renews three times per period.
LEASE_TTL = timedelta(seconds=30)


class NodeLeases:
    """Claims a node number for this process and keeps it while the process serves."""

    def __init__(
        self,
        leases: NodeLeaseRepository,
        clock: Clock,
        *,
        holder: str,
        label: str,
        ttl: timedelta = LEASE_TTL,
    ) -> None:
        self._leases = leases
        self._clock = clock
        self._holder = holder
        self._label = label
        self._ttl = ttl
        self.node_id: int | None = None

    @property
    def interval(self) -> timedelta:
        """How often ``heartbeat`` should run."""
        return self._ttl / 3

    def claim(self, wanted: int | None) -> int:
        """Lease ``wanted``, or (``None``, i.e. ``BERKAS_NODE_ID=auto``) the lowest free
        number; ``Conflict`` (``node_id_taken``) when another live node holds it."""
        now = self._clock.now()
        if wanted is not None:
            other = self._leases.acquire(self._lease(wanted, now), now)
            if other is not None:
                raise Conflict(
                    f"node id {wanted} is held by another live node ({other.label}) until "
                    f"{iso8601(other.expires_at)}; give this node another BERKAS_NODE_ID, "
                    "or BERKAS_NODE_ID=auto.",
                    code=Code.NODE_ID_TAKEN,
                )
            self.node_id = wanted
            return wanted
        taken = {lease.node_id for lease in self._leases.held(now) if lease.holder != self._holder}
        for candidate in range(MAX_NODE + 1):
            # A number seen free may be claimed by a node starting beside us: then the
            # acquire answers its lease and the next number is tried.
            if (
                candidate not in taken
                and self._leases.acquire(self._lease(candidate, now), now) is None
            ):
                self.node_id = candidate
                return candidate
        raise Conflict(
            f"all {MAX_NODE + 1} node ids are held by live nodes.", code=Code.NODE_ID_TAKEN
        )

    def heartbeat(self) -> None:
        """Renew the lease; if another node took it meanwhile (this one stalled past the
        lease), say so loudly: ids may clash until an operator stops one of them."""
        if self.node_id is None:
            return
        now = self._clock.now()
        if self._leases.renew(self._lease(self.node_id, now)):
            return
        other = self._leases.acquire(self._lease(self.node_id, now), now)
        if other is not None:
            log.critical(
                "node id %d was taken over by %s while this node (%s) still serves; "
                "stop one of them",
                self.node_id,
                other.label,
                self._label,
            )

    def release(self) -> None:
        """Give the number up at a clean shutdown, so it is free at once."""
        if self.node_id is not None:
            self._leases.release(self.node_id, self._holder)

    def _lease(self, node_id: int, now: datetime) -> NodeLease:
        return NodeLease(
            node_id=node_id, holder=self._holder, label=self._label, expires_at=now + self._ttl
        )
