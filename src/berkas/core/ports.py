"""The Protocols the use cases need; adapters implement them, wiring picks which."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from berkas.core.egress import FetchResult
from berkas.core.listing import FileFilter, Position
from berkas.core.models import (
    Client,
    DataKeyBinding,
    FileEvent,
    NodeLease,
    ReplayRecord,
    StoredFile,
    UpgradeBacklog,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class BlobStore(Protocol):
    """Bytes by key. Writes are atomic and durable when ``put_file`` returns."""

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """Store the file at ``path`` under ``key`` (temp name, fsync, rename; or one PUT).

        ``path`` is a spooled temporary file the caller owns; the store may move it.
        """
        ...

    def open(
        self, key: str, chunk_size: int = 65536, *, first_size: int | None = None
    ) -> Iterator[bytes]:
        """Yield the stored bytes; raises ``NotFound`` when the key is absent.

        Pieces are ``chunk_size`` bytes (the last may be shorter); with ``first_size``
        the first one is that long instead. A reader of an envelope asks for its header,
        then whole sealed chunks (core/envelope.py), so nothing is re-cut in Python.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""
        ...

    def check(self) -> None:
        """Raise ``Unavailable`` if the store cannot be reached (for /readyz)."""
        ...


class ChangeSignal(Protocol):
    """A "something changed" flag shared by the processes of one data dir (a file's
    mtime, adapters/change_marker.py): cheap enough to read on every request."""

    def version(self) -> int:
        """A value that differs after any process called ``notify``."""
        ...

    def notify(self) -> None: ...


@runtime_checkable
class StagingBlobStore(BlobStore, Protocol):
    """A store that can hold bytes under a staging name and publish them at their key
    later (a rename on local disk): the document store then commits the row between the
    two, one durable round per upload (services/documents.py). Staging names are file
    ids; what is staged survives a crash until ``publish`` or ``drop_staged``."""

    def stage(self, name: str, path: Path) -> None:
        """Make the file at ``path`` durable under staging ``name`` (the store may move
        it); not readable by key yet."""
        ...

    def publish(self, name: str, key: str) -> None:
        """Move what is staged as ``name`` to ``key``, durably (replacing what a key no
        row names may hold). Nothing staged under ``name``: a no-op (published before)."""
        ...

    def unstage(self, name: str, path: Path) -> None:
        """Give back what is staged as ``name`` at ``path`` (for another attempt)."""
        ...

    def drop_staged(self, name: str) -> None:
        """Forget what is staged as ``name``; nothing there is not an error."""
        ...

    def staged(self) -> list[str]:
        """The staging names a crash left (for recovery at start, before serving)."""
        ...


@runtime_checkable
class PathBlobStore(BlobStore, Protocol):
    """A store that keeps each object as one local file (local disk): a download of
    bytes stored as sent can be served from that file, not piped through Python."""

    def path_of(self, key: str) -> Path | None:
        """The file holding ``key``'s bytes, or None when there is none."""
        ...


@runtime_checkable
class LinkPresigner(Protocol):
    """A store that signs its own download URLs (S3's SigV4 query authentication)."""

    def presign(self, key: str, *, content_type: str, filename: str, expires_in: int) -> str:
        """A URL that GETs ``key`` for ``expires_in`` seconds, answering with this content
        type, ``Cache-Control: private, no-store`` and an inline ``filename``."""
        ...


class ClientRepository(Protocol):
    def add(self, client: Client) -> None:
        """Insert; raises ``Conflict`` (code ``client_exists``) on a duplicate id."""
        ...

    def get(self, client_id: str) -> Client | None: ...

    def list(self) -> list[Client]: ...

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        """Return False when no such client."""
        ...

    def set_label(self, client_id: str, label: str | None) -> bool:
        """Set (None: remove) the operator's label; False when no such client."""
        ...

    def rotate_secret(
        self,
        client_id: str,
        secret_key: str,
        rotated_at: datetime,
        previous_expires_at: datetime | None,
    ) -> Client | None:
        """Make ``secret_key`` current and keep the one it replaces verifying until
        ``previous_expires_at`` (None: not at all), in one atomic write. Only one previous
        secret is kept: one still in its grace from an earlier rotation is dropped.
        Returns the client as it was before, or None when no such client."""
        ...

    def forget_expired_secrets(self, now: datetime) -> int:
        """Delete previous secrets whose grace ended by ``now``; returns how many."""
        ...


@runtime_checkable
class CachedClientRepository(ClientRepository, Protocol):
    """A ``ClientRepository`` that may answer from memory (docs/design.md 2.1)."""

    def remembered(self, client_id: str) -> tuple[Client | None, bool]:
        """The client, and whether it came from memory (then it may be as old as the
        cache's bound) rather than from the database just now."""
        ...

    def fresh(self, client_id: str) -> Client | None:
        """The client as the database has it now, refreshing the cached entry."""
        ...


class FileRepository(Protocol):
    def reserve_key(self, key: str, node_id: int, created_at: datetime) -> None:
        """Note, before its bytes are written, that ``key`` may soon hold a blob: the
        intent a restart uses to remove blobs whose row never committed (docs/design.md 5.5)."""
        ...

    def add(self, stored: StoredFile, event: FileEvent | None = None) -> str | None:
        """Insert one row, drop the reservation of its key and append ``event``, in one
        transaction; raises ``Conflict`` (code ``duplicate_id``) on an id collision.

        Returns what ``duplicate_of`` would have answered just before the insert (the
        first earlier file of this client in this category with these bytes), read in
        the same transaction: an upload's row, event and duplicate lookup are one unit."""
        ...

    def remove(self, file_id: str, node_id: int, event: FileEvent) -> StoredFile | None:
        """Delete the row, reserve its key for ``node_id`` (the blob removal still to
        come; a crash before it leaves the intent ``recover_orphans`` finishes) and append
        ``event``, in one transaction. Returns the removed file, or None when absent;
        raises ``Conflict`` (``file_on_hold``) for a file on legal hold, deleting nothing."""
        ...

    def revoke_links(
        self, file_id: str, event: FileEvent, *, generation: int, data_key: str | None
    ) -> int | None:
        """Move the file's link generation from ``generation`` to the next, store
        ``data_key`` (rewrapped for the new generation; None: the file has none) and
        append ``event``, in one transaction; returns the new generation, or None when
        the file is gone or no longer at ``generation`` (a concurrent revoke)."""
        ...

    def set_hold(self, file_id: str, hold: bool, event: FileEvent) -> bool:
        """Set or lift the legal hold (with ``event``); False when no such file."""
        ...

    def expired(self, now: datetime, limit: int) -> list[StoredFile]:
        """Up to ``limit`` files whose retention ended by ``now`` and that are not on
        hold, oldest retention first."""
        ...

    def duplicate_of(self, client_id: str, category: str, sha256: str) -> str | None:
        """The id of the first file this client stored in ``category`` with these bytes."""
        ...

    def release_key(self, key: str) -> None:
        """Drop the reservation of ``key`` (its blob was removed or never written)."""
        ...

    def reserved_keys(self, node_id: int) -> list[str]:
        """Keys this node reserved and never committed or released."""
        ...

    def position_of(self, client_id: str | None, file_id: str) -> Position | None:
        """Where ``file_id`` stands in ``client_id``'s list (None: any client's): its
        (created_at, id), from its row, or from its ``uploaded`` event once deleted;
        None when it is no file of that client. Another client's id costs the same reads
        as an unknown one (one indexed lookup in each table), so the time a cursor takes
        tells a caller nothing about other clients' files."""
        ...

    def listed(
        self,
        client_id: str | None,
        match: FileFilter,
        *,
        limit: int,
        after: Position | None = None,
        before: Position | None = None,
    ) -> list[StoredFile]:
        """Up to ``limit`` files of ``client_id`` (None: every client's) that ``match``,
        in (created_at, id) order: descending from just past ``after`` (or the newest);
        with ``before``, ascending from just past it (the newer files nearest it first)."""
        ...

    def get(self, file_id: str) -> StoredFile | None: ...

    def get_by_key(self, key: str) -> StoredFile | None: ...

    # Bringing files stored by an older release up to the current policy (README Upgrading,
    # ``berkas files upgrade``).

    def backlog(self) -> UpgradeBacklog:
        """How many files are stored in clear, never checked for metadata, and without a
        retention date (by category); reads only."""
        ...

    def stamp_retention(
        self, category: str, span: timedelta, at: datetime, actor: str | None = None
    ) -> int:
        """Set ``retained_until`` to ``created_at + span`` (whole seconds) on every file of
        ``category`` that has none, each with an ``upgraded`` event at ``at`` naming
        ``actor``, in one transaction of two statements; returns how many."""
        ...

    def outdated(
        self, *, after: str, limit: int, in_clear: bool, unchecked: bool
    ) -> list[StoredFile]:
        """Up to ``limit`` files with an id above ``after``, in id order, that are stored
        in clear (when ``in_clear``) or not yet checked for metadata (when ``unchecked``)."""
        ...

    def upgrade(
        self, stored: StoredFile, upgraded: StoredFile, node_id: int, event: FileEvent
    ) -> bool:
        """Make the row of ``stored`` say what ``upgraded`` says (key, data key, size,
        sha256, dimensions, metadata fields) and append ``event``, in one transaction,
        only while the row still has ``stored.key`` and ``stored.link_generation`` (a
        concurrent delete or revoke wins). When the key changes, the new key must still
        be reserved: its reservation is dropped and the old key reserved for ``node_id``
        (the removal of the old object still to come). False, nothing changed, otherwise."""
        ...


class ReplayRepository(Protocol):
    def begin(self, record: ReplayRecord) -> ReplayRecord | None:
        """Reserve (client_id, request_id). Returns None when newly reserved, else the
        record already there (atomic across nodes: a unique key decides)."""
        ...

    def finish(self, client_id: str, request_id: str, status: int, body: bytes) -> None:
        """Record the response the first request got."""
        ...

    def release(self, client_id: str, request_id: str) -> None:
        """Forget a reservation whose request failed on our side (5xx), so a retry runs."""
        ...

    def release_stale(self, client_id: str, request_id: str, started_before: datetime) -> bool:
        """Forget a reservation still unanswered since before ``started_before`` (its
        request died with a crashed node); True when one was removed. Atomic: a live or
        answered record is never touched."""
        ...

    def purge_before(self, cutoff: datetime, *, uploads_before: datetime) -> int:
        """Delete signed-request records older than ``cutoff`` and upload records
        (``UPLOAD_REPLAY_PREFIX``) older than ``uploads_before``; returns how many."""
        ...


class AuditLog(Protocol):
    """The append-only audit trail of documents (docs/design.md 6.3)."""

    def append(self, event: FileEvent) -> None:
        """Write one event durably before returning."""
        ...

    def for_file(self, file_id: str) -> list[FileEvent]:
        """Every event of ``file_id``, oldest first (also after the file was deleted)."""
        ...

    def export(
        self, *, since: datetime | None, client_id: str | None, after_id: int, limit: int
    ) -> list[FileEvent]:
        """Up to ``limit`` events with id above ``after_id``, at or after ``since``, of
        ``client_id`` (None: all), in id order: pages of an export."""
        ...


class TaskLeaseRepository(Protocol):
    """Leases on cluster-wide chores: one holder at a time, atomic across nodes."""

    def acquire(self, name: str, holder: str, expires_at: datetime, now: datetime) -> bool:
        """Take or renew ``name`` until ``expires_at``: True unless another holder's
        lease is still live at ``now``."""
        ...

    def release(self, name: str, holder: str) -> None:
        """Give ``name`` up if this holder has it."""
        ...


class NodeLeaseRepository(Protocol):
    """Node numbers leased to live nodes; every write is atomic across nodes."""

    def acquire(self, lease: NodeLease, now: datetime) -> NodeLease | None:
        """Take ``lease.node_id`` for ``lease.holder`` until ``lease.expires_at``: None when
        taken (it was free, expired before ``now``, or already this holder's), else the
        live lease of another holder."""
        ...

    def renew(self, lease: NodeLease) -> bool:
        """Extend a lease this holder still holds; False when it was lost meanwhile."""
        ...

    def release(self, node_id: int, holder: str) -> None:
        """Give the number up (a clean shutdown); another holder's lease is untouched."""
        ...

    def held(self, now: datetime) -> list[NodeLease]:
        """Leases still live at ``now``, by node number."""
        ...


@dataclass(frozen=True, slots=True)
class WriteLockWaits:
    """How long this process's write transactions waited for the database's write lock,
    since it started: ``count`` transactions, ``seconds`` in all, and ``buckets``, the
    number that waited at most each bound (cumulative, as Prometheus histograms count)."""

    count: int
    seconds: float
    buckets: tuple[tuple[float, int], ...]


class Database(Protocol):
    """The metadata store as a whole: its repositories plus health."""

    clients: ClientRepository
    files: FileRepository
    replays: ReplayRepository
    leases: NodeLeaseRepository
    events: AuditLog
    tasks: TaskLeaseRepository

    def check(self) -> None:
        """Raise ``Unavailable`` if unreachable (for /readyz)."""
        ...

    def write_lock_waits(self) -> WriteLockWaits | None:
        """The waits for a write lock all writers share (SQLite's); None where writers
        do not queue on one lock (PostgreSQL, memory)."""
        ...

    def close(self) -> None: ...


class SealedSecrets(Protocol):
    """The secrets the database keeps sealed under the master key (``berkas secrets``)."""

    @property
    def master_key_ids(self) -> tuple[str, ...]:
        """The ids of the master keys this process holds, the current (sealing) one first."""
        ...

    def by_master_key(self) -> dict[str, dict[str, int]]:
        """For each kind of secret, how many values each master key id seals."""
        ...

    def reseal(self) -> dict[str, int]:
        """Reseal under the current master key what an older one sealed; counts by kind.
        Values in clear are never sealed here (``clear_values`` names them)."""
        ...

    def clear_values(self) -> list[tuple[str, str]]:
        """(column, row) of every value in a sealed column that is not sealed."""
        ...

    def master_key_ages(self) -> dict[str, datetime]:
        """When each master key id first sealed in this database."""
        ...


class DataKeys(Protocol):
    """Wraps each document's data key under the master key (encryption at rest, docs/design.md 6.6).

    A wrapped key is bound to its file's id, owner, object key and link generation
    (``DataKeyBinding``): with any of them changed in the row it does not open.
    """

    def wrap(self, key: bytes, binding: DataKeyBinding) -> str:
        """``key`` sealed for the row ``binding`` describes."""
        ...

    def unwrap(self, wrapped: str, binding: DataKeyBinding) -> bytes:
        """The data key of the row ``binding`` describes; raises ``BerkasError``
        (``file_unreadable``) when this node's master keys cannot open it there."""
        ...


class HealthCheck(Protocol):
    """Something /readyz asks: the database, the blob store."""

    def check(self) -> None:
        """Raise ``Unavailable`` (its code names the cause) when not reachable."""
        ...


class FetchSink(Protocol):
    """Where a fetched body goes; it alone counts the bytes against the upload's cap."""

    def expect(self, length: int) -> None:
        """Raise ``PayloadTooLarge`` now if a body of ``length`` bytes would be over the cap."""
        ...

    async def write(self, chunk: bytes) -> None:
        """Take the next chunk; raises ``PayloadTooLarge`` once the cap would be crossed."""
        ...


class Fetcher(Protocol):
    """Fetches a partner-named URL under the egress policy (docs/design.md 4), streaming to
    ``sink``."""

    async def fetch(self, url: str, sink: FetchSink) -> FetchResult:
        """Stream the body into ``sink``; raise ``FetchRefused`` with a specific code and
        let what ``sink`` raises (``PayloadTooLarge``) through unchanged."""
        ...
