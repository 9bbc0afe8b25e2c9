"""Leases in the database: node numbers in ``node_leases`` (docs/design.md 5.6) and
cluster-wide chores in ``task_leases`` (docs/design.md 7.4)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, exc, insert, or_, select, update

from berkas.adapters.db.repositories.base import _insert_unless_taken, _SqlRepository
from berkas.adapters.db.tables import node_leases, task_leases
from berkas.core.models import NodeLease, require_utc


class SqlNodeLeaseRepository(_SqlRepository):
    """Node-number leases in the ``node_leases`` table."""

    def acquire(self, lease: NodeLease, now: datetime) -> NodeLease | None:
        """Take the number unless another holder's lease is still live at ``now``.

        One write transaction: on SQLite it starts with BEGIN IMMEDIATE, on PostgreSQL the
        row is read FOR UPDATE, and a first claim races on the primary key; so two nodes
        claiming one free number at once cannot both win.
        """
        now = require_utc(now, "now")
        values = {
            "holder": lease.holder,
            "label": lease.label,
            "expires_at": require_utc(lease.expires_at, "expires_at"),
        }
        try:
            with self._write() as connection:
                row = connection.execute(
                    select(node_leases)
                    .where(node_leases.c.node_id == lease.node_id)
                    .with_for_update()
                ).one_or_none()
                if row is None:
                    connection.execute(insert(node_leases).values(node_id=lease.node_id, **values))
                    return None
                current = _lease(row)
                if current.holder != lease.holder and current.expires_at > now:
                    return current
                connection.execute(
                    update(node_leases)
                    .where(node_leases.c.node_id == lease.node_id)
                    .values(**values)
                )
                return None
        except exc.IntegrityError:
            # Another node inserted the same number first: it is theirs now.
            with self._read() as connection:
                row = connection.execute(
                    select(node_leases).where(node_leases.c.node_id == lease.node_id)
                ).one()
            return _lease(row)

    def renew(self, lease: NodeLease) -> bool:
        """Extend the lease while this holder still has it."""
        with self._write() as connection:
            result = connection.execute(
                update(node_leases)
                .where(
                    node_leases.c.node_id == lease.node_id,
                    node_leases.c.holder == lease.holder,
                )
                .values(
                    label=lease.label,
                    expires_at=require_utc(lease.expires_at, "expires_at"),
                )
            )
        return bool(result.rowcount)

    def release(self, node_id: int, holder: str) -> None:
        """Drop this holder's lease on ``node_id``."""
        with self._write() as connection:
            connection.execute(
                delete(node_leases).where(
                    node_leases.c.node_id == node_id, node_leases.c.holder == holder
                )
            )

    def held(self, now: datetime) -> list[NodeLease]:
        """Leases live at ``now``, lowest number first."""
        with self._read() as connection:
            rows = connection.execute(
                select(node_leases)
                .where(node_leases.c.expires_at > require_utc(now, "now"))
                .order_by(node_leases.c.node_id)
            ).all()
        return [_lease(row) for row in rows]


def _lease(row: Row[Any]) -> NodeLease:
    return NodeLease(
        node_id=row.node_id, holder=row.holder, label=row.label, expires_at=row.expires_at
    )


class SqlTaskLeases(_SqlRepository):
    """Leases on cluster-wide chores in ``task_leases``."""

    def acquire(self, name: str, holder: str, expires_at: datetime, now: datetime) -> bool:
        """Take ``name`` if free, expired or already ours; one statement decides."""
        values = {"name": name, "holder": holder, "expires_at": require_utc(expires_at, "until")}
        now = require_utc(now, "now")

        def take(connection: Connection) -> bool:
            if _insert_unless_taken(connection, task_leases, values):
                return True
            taken = connection.execute(
                update(task_leases)
                .where(task_leases.c.name == name)
                .where(or_(task_leases.c.holder == holder, task_leases.c.expires_at <= now))
                .values(holder=holder, expires_at=values["expires_at"])
            )
            return taken.rowcount == 1

        return self._run(take)

    def release(self, name: str, holder: str) -> None:
        """Give ``name`` up if this holder has it."""
        with self._write() as connection:
            connection.execute(
                delete(task_leases)
                .where(task_leases.c.name == name)
                .where(task_leases.c.holder == holder)
            )
