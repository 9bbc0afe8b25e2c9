"""The records berkas keeps: partner clients, stored files, replay records, signing keys."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from berkas.core.codes import Code
from berkas.core.errors import Conflict, InvalidRequest

# Request-Ids of upload Idempotency-Keys in the replay table start with this: they are
# kept longer than signed Request-Ids (BERKAS_IDEMPOTENCY_RETENTION_HOURS).
UPLOAD_REPLAY_PREFIX = "upload:"


@dataclass(frozen=True, slots=True)
class Client:
    """A partner: its DOKU-style Client-Id and the HMAC secret it signs requests with.

    After ``berkas clients rotate-secret`` the secret it replaced, ``previous_secret_key``,
    still verifies until ``previous_expires_at`` (the grace for the partner to switch);
    ``secret_rotated_at`` is when the current secret was issued by a rotation.
    """

    client_id: str
    secret_key: str
    enabled: bool
    created_at: datetime
    label: str | None = None
    secret_rotated_at: datetime | None = None
    previous_secret_key: str | None = None
    previous_expires_at: datetime | None = None
    # Bumped by a disable and by a secret rotation; a token minted under an older
    # generation is refused (its client's state changed since it was minted).
    token_generation: int = 0

    def previous_secret_at(self, now: datetime) -> str | None:
        """The replaced secret while its grace lasts at ``now``, else None."""
        if self.previous_secret_key is None or self.previous_expires_at is None:
            return None
        return self.previous_secret_key if now < self.previous_expires_at else None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """Metadata of one stored document; the bytes live in the blob store under ``key``."""

    id: str
    client_id: str
    category: str
    code: str | None
    key: str
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    created_at: datetime
    # Lifecycle (docs/design.md 6.2, 6.4): removed by housekeeping after ``retained_until``
    # (None: kept until deleted) unless on ``legal_hold``; ``link_generation`` is signed
    # into proxy links, so a revocation (which bumps it) kills every link issued before.
    retained_until: datetime | None = None
    legal_hold: bool = False
    link_generation: int = 0
    # The data key wrapped under the master key when the object is encrypted at rest.
    data_key: str | None = None
    # What privacy stripping removed before the bytes were stored ("exif", "gps", ...).
    metadata_removed: tuple[str, ...] = ()
    # Whether the metadata policy ran on it (False: stored by a release before stripping).
    metadata_checked: bool = True

    @property
    def binding(self) -> DataKeyBinding:
        """What this file's wrapped data key is bound to, as the row says now."""
        return DataKeyBinding(self.id, self.client_id, self.key, self.link_generation)


@dataclass(frozen=True, slots=True)
class DataKeyBinding:
    """What a document's wrapped data key is bound to: its id, its owner, its object key
    and its link generation. A database writer who changes any of them (gives the file to
    another partner, points it at another object, undoes a revocation) is left with a key
    that no longer opens, so the document is refused rather than served."""

    file_id: str
    client_id: str
    key: str
    link_generation: int


class EventKind(enum.StrEnum):
    """What happened to a document, as the audit trail records it (docs/design.md 6.3)."""

    UPLOADED = "uploaded"
    DESCRIBED = "described"
    LINK_ISSUED = "link_issued"
    LINK_OPENED = "link_opened"
    LINK_REFUSED = "link_refused"
    LINKS_REVOKED = "links_revoked"
    DELETED = "deleted"
    RETENTION_EXPIRED = "retention_expired"
    HOLD_SET = "hold_set"
    HOLD_RELEASED = "hold_released"
    # ``berkas files upgrade`` brought it up to the current policy (detail: what it did).
    UPGRADED = "upgraded"


@dataclass(frozen=True, slots=True)
class FileEvent:
    """One audit event. ``ip``/``user_agent`` are the caller as seen through the
    configured proxies (None for the operator's CLI and housekeeping); ``detail`` is a
    short machine-readable note (the refusal code, who deleted, the new generation)."""

    file_id: str
    client_id: str
    kind: EventKind
    at: datetime
    ip: str | None = None
    user_agent: str | None = None
    detail: str | None = None
    id: int | None = None  # assigned by the store, increasing
    # The request id of the access-log line of the request behind it (None: housekeeping),
    # and who acted for an operator's event (the OS user, or `--actor`).
    request_id: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is behind an audited action: the client's address (as seen through the
    configured proxies), its User-Agent and the request id its access-log line carries;
    for the operator's CLI, who acted (``actor``). Housekeeping has none of them."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    actor: str | None = None

    def event(
        self, stored: StoredFile, kind: EventKind, at: datetime, detail: str | None = None
    ) -> FileEvent:
        """The audit event of ``kind`` on ``stored`` by this caller at ``at``."""
        return FileEvent(
            file_id=stored.id,
            client_id=stored.client_id,
            kind=kind,
            at=at,
            ip=self.ip,
            user_agent=self.user_agent,
            detail=detail,
            request_id=self.request_id,
            actor=self.actor,
        )


HOUSEKEEPING = Caller(actor="housekeeping")


def file_on_hold(file_id: str) -> Conflict:
    """The error for deleting a document on legal hold (partner, operator or retention)."""
    return Conflict(
        f"file {file_id!r} is on legal hold and cannot be deleted until the operator "
        "releases it (berkas files release).",
        code=Code.FILE_ON_HOLD,
    )


@dataclass(frozen=True, slots=True)
class UpgradeBacklog:
    """Stored files older than the current policy (``berkas secrets status``): stored in
    clear, never checked for metadata, and without a retention date by category."""

    in_clear: int
    unchecked: int
    without_retention: dict[str, int]
    in_clear_unchecked: int = 0  # both at once (one document, one rewrite)


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A Request-Id already seen for a client: what it asked for and what it got back.

    ``status``/``body`` are ``None`` while the first request is still in flight.
    """

    client_id: str
    request_id: str
    fingerprint: str
    status: int | None
    body: bytes | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NodeLease:
    """Who holds a node number until when (docs/design.md 5.6: each node leases its node id).

    ``holder`` is the stable identity of a data dir (so the same node restarting after a
    crash takes its lease straight back); ``label`` says where it runs, for messages.
    """

    node_id: int
    holder: str
    label: str
    expires_at: datetime


# The checks and errors every repository shares (the SQL ones and their in-memory twins).


def require_utc(value: datetime, field: str) -> datetime:
    """Return ``value`` in UTC; raise ``ValueError`` when it is naive (a caller bug)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{field} must be a timezone-aware datetime, got naive {value!r}")
    return value.astimezone(UTC)


def client_exists(client_id: str) -> Conflict:
    """The error for registering a Client-Id twice."""
    return Conflict(
        f"client_id {client_id!r} is already registered; "
        "choose another Client-Id or enable the existing one.",
        code=Code.CLIENT_EXISTS,
    )


def unknown_client(client_id: str) -> InvalidRequest:
    """The error for a file row naming a client that is not registered."""
    return InvalidRequest(
        f"client_id {client_id!r} is not a registered client; register it first "
        "(berkas clients create).",
        code=Code.UNKNOWN_CLIENT,
    )


def duplicate_file(stored: StoredFile) -> Conflict:
    """The error for a file row whose id or blob key is already taken."""
    return Conflict(
        f"file id {stored.id!r} or key {stored.key!r} is already taken; "
        "each stored file needs a new id and key.",
        code=Code.DUPLICATE_ID,
    )
