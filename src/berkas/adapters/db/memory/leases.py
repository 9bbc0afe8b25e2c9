"""Leases in memory: node numbers and cluster-wide chores."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from berkas.adapters.db.memory.tables import _Tables
from berkas.core.models import NodeLease, require_utc


class MemoryNodeLeaseRepository:
    """Node-number leases in a dict; the lock makes each claim atomic."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def acquire(self, lease: NodeLease, now: datetime) -> NodeLease | None:
        """Take the number unless another holder's lease is still live at ``now``."""
        now = require_utc(now, "now")
        lease = dataclasses.replace(lease, expires_at=require_utc(lease.expires_at, "expires_at"))
        with self._tables.lock:
            current = self._tables.leases.get(lease.node_id)
            if current is not None and current.holder != lease.holder and current.expires_at > now:
                return current
            self._tables.leases[lease.node_id] = lease
            return None

    def renew(self, lease: NodeLease) -> bool:
        """Extend the lease while this holder still has it."""
        with self._tables.lock:
            current = self._tables.leases.get(lease.node_id)
            if current is None or current.holder != lease.holder:
                return False
            self._tables.leases[lease.node_id] = lease
            return True

    def release(self, node_id: int, holder: str) -> None:
        """Drop this holder's lease on ``node_id``."""
        with self._tables.lock:
            current = self._tables.leases.get(node_id)
            if current is not None and current.holder == holder:
                del self._tables.leases[node_id]

    def held(self, now: datetime) -> list[NodeLease]:
        """Leases live at ``now``, lowest number first."""
        now = require_utc(now, "now")
        with self._tables.lock:
            live = [lease for lease in self._tables.leases.values() if lease.expires_at > now]
        return sorted(live, key=lambda lease: lease.node_id)


class MemoryTaskLeases:
    """Chore leases in a dict."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def acquire(self, name: str, holder: str, expires_at: datetime, now: datetime) -> bool:
        """Take ``name`` if free, expired or already ours."""
        expires_at, now = require_utc(expires_at, "until"), require_utc(now, "now")
        with self._tables.lock:
            current = self._tables.tasks.get(name)
            if current is not None and current[0] != holder and current[1] > now:
                return False
            self._tables.tasks[name] = (holder, expires_at)
            return True

    def release(self, name: str, holder: str) -> None:
        """Give ``name`` up if this holder has it."""
        with self._tables.lock:
            current = self._tables.tasks.get(name)
            if current is not None and current[0] == holder:
                del self._tables.tasks[name]
