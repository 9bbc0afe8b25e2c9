"""``MemoryDatabase``: the metadata store in process memory, for unit tests of use cases.

Behaves like ``SqlDatabase`` (same contract suite) but keeps nothing across restarts.
"""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta

from berkas.adapters.keys import StoredKey
from berkas.core.models import (
    UPLOAD_REPLAY_PREFIX,
    Client,
    EventKind,
    FileEvent,
    NodeLease,
    ReplayRecord,
    StoredFile,
    UpgradeBacklog,
    client_exists,
    duplicate_file,
    file_on_hold,
    require_utc,
    unknown_client,
)
from berkas.core.ports import (
    AuditLog,
    ClientRepository,
    FileRepository,
    NodeLeaseRepository,
    ReplayRepository,
    TaskLeaseRepository,
)


class _Tables:
    """The rows, guarded by one lock as a database would serialise writers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, Client] = {}
        self.files: dict[str, StoredFile] = {}
        self.keys: dict[str, str] = {}
        self.replays: dict[tuple[str, str], ReplayRecord] = {}
        self.pending: dict[str, tuple[int, datetime]] = {}
        self.leases: dict[int, NodeLease] = {}
        self.events: list[FileEvent] = []
        self.tasks: dict[str, tuple[str, datetime]] = {}

    def append(self, event: FileEvent) -> None:
        """Append under the lock (the caller holds it)."""
        event = dataclasses.replace(
            event,
            at=require_utc(event.at, "at"),
            id=len(self.events) + 1,
            user_agent=None if event.user_agent is None else event.user_agent[:512],
        )
        self.events.append(event)


class MemoryClientRepository:
    """Partner clients in a dict."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def add(self, client: Client) -> None:
        """Insert; raises ``Conflict`` (code ``client_exists``) on a duplicate id."""
        client = dataclasses.replace(
            client,
            created_at=require_utc(client.created_at, "created_at"),
            secret_rotated_at=_utc_or_none(client.secret_rotated_at, "secret_rotated_at"),
            previous_expires_at=_utc_or_none(client.previous_expires_at, "previous_expires_at"),
        )
        with self._tables.lock:
            if client.client_id in self._tables.clients:
                raise client_exists(client.client_id)
            self._tables.clients[client.client_id] = client

    def get(self, client_id: str) -> Client | None:
        """The client with ``client_id``, or None."""
        with self._tables.lock:
            return self._tables.clients.get(client_id)

    def list(self) -> list[Client]:
        """Every client, oldest first."""
        with self._tables.lock:
            found = list(self._tables.clients.values())
        return sorted(found, key=lambda client: (client.created_at, client.client_id))

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Enable or disable a client; False when no such client. A disable bumps the
        token generation (tokens minted before it stay dead after a later enable)."""
        with self._tables.lock:
            client = self._tables.clients.get(client_id)
            if client is None:
                return False
            generation = client.token_generation + (0 if enabled else 1)
            self._tables.clients[client_id] = dataclasses.replace(
                client, enabled=enabled, token_generation=generation
            )
            return True

    def set_label(self, client_id: str, label: str | None) -> bool:
        """Set (None: remove) the label; False when no such client."""
        with self._tables.lock:
            client = self._tables.clients.get(client_id)
            if client is None:
                return False
            self._tables.clients[client_id] = dataclasses.replace(client, label=label)
            return True

    def rotate_secret(
        self,
        client_id: str,
        secret_key: str,
        rotated_at: datetime,
        previous_expires_at: datetime | None,
    ) -> Client | None:
        """Make ``secret_key`` current; the replaced one verifies until
        ``previous_expires_at`` (None: at once no more). Returns the client as it was."""
        rotated_at = require_utc(rotated_at, "rotated_at")
        expires = _utc_or_none(previous_expires_at, "previous_expires_at")
        with self._tables.lock:
            before = self._tables.clients.get(client_id)
            if before is None:
                return None
            self._tables.clients[client_id] = dataclasses.replace(
                before,
                secret_key=secret_key,
                secret_rotated_at=rotated_at,
                previous_secret_key=None if expires is None else before.secret_key,
                previous_expires_at=expires,
                token_generation=before.token_generation + 1,
            )
            return before

    def forget_expired_secrets(self, now: datetime) -> int:
        """Delete previous secrets whose grace ended by ``now``; returns how many."""
        now = require_utc(now, "now")
        with self._tables.lock:
            expired = [
                client
                for client in self._tables.clients.values()
                if client.previous_expires_at is not None and client.previous_expires_at <= now
            ]
            for client in expired:
                self._tables.clients[client.client_id] = dataclasses.replace(
                    client, previous_secret_key=None, previous_expires_at=None
                )
        return len(expired)


def _utc_or_none(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else require_utc(value, field)


class MemoryFileRepository:
    """Stored-file metadata in a dict, with the same key uniqueness as the table."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def add(self, stored: StoredFile, event: FileEvent | None = None) -> None:
        """Insert; ``Conflict`` (``duplicate_id``) or ``InvalidRequest`` (``unknown_client``)."""
        stored = dataclasses.replace(
            stored,
            created_at=require_utc(stored.created_at, "created_at"),
            retained_until=_utc_or_none(stored.retained_until, "retained_until"),
        )
        with self._tables.lock:
            if stored.id in self._tables.files or stored.key in self._tables.keys:
                raise duplicate_file(stored)
            if stored.client_id not in self._tables.clients:
                raise unknown_client(stored.client_id)
            self._tables.files[stored.id] = stored
            self._tables.keys[stored.key] = stored.id
            self._tables.pending.pop(stored.key, None)
            if event is not None:
                self._tables.append(event)

    def remove(self, file_id: str, node_id: int, event: FileEvent) -> StoredFile | None:
        """Delete the row, reserve its key for the blob removal, append ``event``; None
        when there is no such row, ``Conflict`` (``file_on_hold``) while it is on hold."""
        with self._tables.lock:
            held = self._tables.files.get(file_id)
            if held is not None and held.legal_hold:
                raise file_on_hold(file_id)
            removed = self._tables.files.pop(file_id, None)
            if removed is None:
                return None
            del self._tables.keys[removed.key]
            self._tables.pending.setdefault(removed.key, (node_id, require_utc(event.at, "at")))
            self._tables.append(event)
            return removed

    def revoke_links(
        self, file_id: str, event: FileEvent, *, generation: int, data_key: str | None
    ) -> int | None:
        """Move the link generation from ``generation`` to the next (storing ``data_key``
        when given) and append ``event``; None when gone or no longer at ``generation``."""
        with self._tables.lock:
            stored = self._tables.files.get(file_id)
            if stored is None or stored.link_generation != generation:
                return None
            self._tables.files[file_id] = dataclasses.replace(
                stored,
                link_generation=generation + 1,
                data_key=stored.data_key if data_key is None else data_key,
            )
            self._tables.append(event)
            return generation + 1

    def set_hold(self, file_id: str, hold: bool, event: FileEvent) -> bool:
        """Set or lift the legal hold; False when no such file."""
        with self._tables.lock:
            stored = self._tables.files.get(file_id)
            if stored is None:
                return False
            self._tables.files[file_id] = dataclasses.replace(stored, legal_hold=hold)
            self._tables.append(event)
            return True

    def expired(self, now: datetime, limit: int) -> list[StoredFile]:
        """Files whose retention ended by ``now``, not on hold, oldest retention first."""
        now = require_utc(now, "now")
        with self._tables.lock:
            due = [
                f
                for f in self._tables.files.values()
                if f.retained_until is not None and f.retained_until <= now and not f.legal_hold
            ]
        due.sort(key=lambda f: (f.retained_until or now, f.id))
        return due[:limit]

    def duplicate_of(self, client_id: str, category: str, sha256: str) -> str | None:
        """The first file this client stored in ``category`` with these bytes, or None."""
        with self._tables.lock:
            same = [
                f
                for f in self._tables.files.values()
                if (f.client_id, f.category, f.sha256) == (client_id, category, sha256)
            ]
        same.sort(key=lambda f: (f.created_at, f.id))
        return same[0].id if same else None

    def reserve_key(self, key: str, node_id: int, created_at: datetime) -> None:
        """Record the intent to write ``key`` (idempotent)."""
        created_at = require_utc(created_at, "created_at")
        with self._tables.lock:
            self._tables.pending.setdefault(key, (node_id, created_at))

    def release_key(self, key: str) -> None:
        """Forget the intent to write ``key``."""
        with self._tables.lock:
            self._tables.pending.pop(key, None)

    def reserved_keys(self, node_id: int) -> list[str]:
        """Keys ``node_id`` reserved and never committed or released, oldest first."""
        with self._tables.lock:
            mine = [
                (at, key) for key, (node, at) in self._tables.pending.items() if node == node_id
            ]
        return [key for _, key in sorted(mine)]

    def get(self, file_id: str) -> StoredFile | None:
        """The file with ``file_id``, or None."""
        with self._tables.lock:
            return self._tables.files.get(file_id)

    def get_by_key(self, key: str) -> StoredFile | None:
        """The file stored under blob ``key``, or None."""
        with self._tables.lock:
            file_id = self._tables.keys.get(key)
            return None if file_id is None else self._tables.files[file_id]

    def backlog(self) -> UpgradeBacklog:
        """Files stored in clear, never checked for metadata, without retention by category."""
        with self._tables.lock:
            stored = list(self._tables.files.values())
        without: dict[str, int] = {}
        for f in stored:
            if f.retained_until is None:
                without[f.category] = without.get(f.category, 0) + 1
        in_clear = sum(f.data_key is None for f in stored)
        unchecked = sum(not f.metadata_checked for f in stored)
        both = sum(f.data_key is None and not f.metadata_checked for f in stored)
        return UpgradeBacklog(in_clear, unchecked, without, both)

    def stamp_retention(
        self, category: str, span: timedelta, at: datetime, actor: str | None = None
    ) -> int:
        """``retained_until = created_at + span`` where it is None, with an event each."""
        at = require_utc(at, "at")
        days = f"{span.days} days" if span == timedelta(days=span.days) else f"{span} (h:mm:ss)"
        if span.microseconds or span < timedelta(0):
            raise ValueError(
                f"a retention span is a whole, non-negative number of seconds, got {span}"
            )
        with self._tables.lock:
            due = [
                f
                for f in self._tables.files.values()
                if f.category == category and f.retained_until is None
            ]
            for f in due:
                self._tables.files[f.id] = dataclasses.replace(
                    f, retained_until=f.created_at + span
                )
                detail = f"retention stamped: {days} from upload"
                self._tables.append(
                    FileEvent(f.id, f.client_id, EventKind.UPGRADED, at, detail=detail, actor=actor)
                )
        return len(due)

    def outdated(
        self, *, after: str, limit: int, in_clear: bool, unchecked: bool
    ) -> list[StoredFile]:
        """A page, in id order, of files in clear and/or not checked for metadata."""
        with self._tables.lock:
            found = [
                f
                for f in self._tables.files.values()
                if f.id > after
                and ((in_clear and f.data_key is None) or (unchecked and not f.metadata_checked))
            ]
        return sorted(found, key=lambda f: f.id)[:limit]

    def upgrade(
        self, stored: StoredFile, upgraded: StoredFile, node_id: int, event: FileEvent
    ) -> bool:
        """The conditional swap of ``berkas files upgrade`` (``FileRepository.upgrade``)."""
        with self._tables.lock:
            current = self._tables.files.get(stored.id)
            if (
                current is None
                or current.key != stored.key
                or current.link_generation != stored.link_generation
            ):
                return False
            moved = upgraded.key != stored.key
            if moved and upgraded.key not in self._tables.pending:
                return False
            self._tables.files[stored.id] = dataclasses.replace(
                current,
                key=upgraded.key,
                data_key=upgraded.data_key,
                size=upgraded.size,
                sha256=upgraded.sha256,
                width=upgraded.width,
                height=upgraded.height,
                metadata_removed=upgraded.metadata_removed,
                metadata_checked=upgraded.metadata_checked,
            )
            if moved:
                del self._tables.keys[stored.key]
                self._tables.keys[upgraded.key] = stored.id
                del self._tables.pending[upgraded.key]
                self._tables.pending.setdefault(stored.key, (node_id, require_utc(event.at, "at")))
            self._tables.append(event)
            return True


class MemoryReplayRepository:
    """Request-Id reservations in a dict; the lock makes ``begin`` atomic."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def begin(self, record: ReplayRecord) -> ReplayRecord | None:
        """Reserve (client_id, request_id); None when newly reserved, else the existing row."""
        record = dataclasses.replace(
            record, created_at=require_utc(record.created_at, "created_at")
        )
        with self._tables.lock:
            existing = self._tables.replays.get((record.client_id, record.request_id))
            if existing is not None:
                return existing
            self._tables.replays[(record.client_id, record.request_id)] = record
            return None

    def finish(self, client_id: str, request_id: str, status: int, body: bytes) -> None:
        """Record the response; a reservation already released or purged stays absent."""
        with self._tables.lock:
            existing = self._tables.replays.get((client_id, request_id))
            if existing is not None:
                self._tables.replays[(client_id, request_id)] = dataclasses.replace(
                    existing, status=status, body=bytes(body)
                )

    def release(self, client_id: str, request_id: str) -> None:
        """Forget a reservation so a retry of the same Request-Id runs again."""
        with self._tables.lock:
            self._tables.replays.pop((client_id, request_id), None)

    def release_stale(self, client_id: str, request_id: str, started_before: datetime) -> bool:
        """Forget a reservation left unanswered since before ``started_before``."""
        started_before = require_utc(started_before, "started_before")
        with self._tables.lock:
            record = self._tables.replays.get((client_id, request_id))
            if record is None or record.body is not None or record.created_at >= started_before:
                return False
            del self._tables.replays[(client_id, request_id)]
            return True

    def purge_before(self, cutoff: datetime, *, uploads_before: datetime) -> int:
        """Delete signed-request records created before ``cutoff`` and upload records
        created before ``uploads_before``; returns how many."""
        cutoff = require_utc(cutoff, "cutoff")
        uploads_before = require_utc(uploads_before, "uploads_before")

        def expired(record: ReplayRecord) -> bool:
            upload = record.request_id.startswith(UPLOAD_REPLAY_PREFIX)
            return record.created_at < (uploads_before if upload else cutoff)

        with self._tables.lock:
            old = [key for key, rec in self._tables.replays.items() if expired(rec)]
            for key in old:
                del self._tables.replays[key]
        return len(old)


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


class MemoryKeyStore:
    """Signing keys in memory (an ``adapters.keys.KeyStore``), same rules as SqlKeyStore.

    Several ``KeyRing`` objects over one store behave like nodes sharing a database.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[StoredKey, bytes]] = {}

    def index(self) -> list[StoredKey]:
        with self._lock:
            return [key for key, _ in self._keys.values()]

    def private_pem(self, kid: str) -> bytes | None:
        with self._lock:
            found = self._keys.get(kid)
        return None if found is None else found[1]

    def add(self, key: StoredKey, pem: bytes, *, replace_current: bool) -> bool:
        with self._lock:
            if key.kid in self._keys:
                return False
            current = [k for k, _ in self._keys.values() if k.retired_at is None]
            if key.retired_at is None and current:
                if not replace_current:
                    return False
                for old in current:
                    retired = dataclasses.replace(old, retired_at=key.created_at)
                    self._keys[old.kid] = (retired, self._keys[old.kid][1])
            self._keys[key.kid] = (key, pem)
            return True

    def remove(self, kids: list[str]) -> None:
        with self._lock:
            for kid in kids:
                self._keys.pop(kid, None)


class MemoryAuditLog:
    """The audit trail in a list."""

    def __init__(self, tables: _Tables) -> None:
        self._tables = tables

    def append(self, event: FileEvent) -> None:
        """Append one event."""
        with self._tables.lock:
            self._tables.append(event)

    def for_file(self, file_id: str) -> list[FileEvent]:
        """Every event of ``file_id``, oldest first."""
        with self._tables.lock:
            return [e for e in self._tables.events if e.file_id == file_id]

    def export(
        self, *, since: datetime | None, client_id: str | None, after_id: int, limit: int
    ) -> list[FileEvent]:
        """One page of events in id order."""
        since = _utc_or_none(since, "since")
        with self._tables.lock:
            chosen = [
                e
                for e in self._tables.events
                if (e.id or 0) > after_id
                and (since is None or e.at >= since)
                and (client_id is None or e.client_id == client_id)
            ]
        return chosen[:limit]


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

    def close(self) -> None:
        """Nothing to release."""
