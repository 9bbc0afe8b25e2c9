"""The metadata schema as SQLAlchemy Core tables: clients, files and replay records.

Migrations (``migrations/versions``) create exactly this; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)

# Explicit constraint names, so migrations can refer to (and later alter) them by name on
# every backend; SQLite would otherwise leave them anonymous.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value is stored as
    naive UTC and marked UTC again on the way out. Callers pass aware datetimes only (the
    repositories check), so nothing is ever interpreted in the server's local zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Declarations only (like classes): building them touches no database or settings.
metadata = MetaData(naming_convention=NAMING_CONVENTION)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    # Verifying DOKU's HMAC-SHA256 signature needs the raw secret (docs/design.md 2.1), so it
    # cannot be hashed like a password; it is sealed under the master key instead
    # (adapters/sealing.py). Rows an older release wrote in clear are listed in
    # ``legacy_clear_secrets`` until `berkas secrets seal-legacy` seals them; any other
    # clear value is refused (README, "Secrets at rest and the master key").
    Column("secret_key", String(512), nullable=False),
    Column("enabled", Boolean(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # The operator's name for the partner (``berkas clients label``), shown in lists only.
    Column("label", String(255), nullable=True),
    # ``berkas clients rotate-secret``: when the current secret was issued, and the one it
    # replaced (sealed like it, bound to its own context) with the end of its grace.
    Column("secret_rotated_at", UtcDateTime(), nullable=True),
    Column("previous_secret_key", String(512), nullable=True),
    Column("previous_expires_at", UtcDateTime(), nullable=True),
    # Bumped by a disable and by a secret rotation; every token carries the generation it
    # was minted under, so tokens minted before either stop working at once.
    Column("token_generation", Integer(), nullable=False, server_default="0"),
)
files = Table(
    "files",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(128), ForeignKey("clients.client_id"), nullable=False),
    Column("category", String(64), nullable=False),
    Column("code", String(64), nullable=True),
    Column("key", String(1024), nullable=False, unique=True),
    Column("content_type", String(255), nullable=False),
    Column("size", BigInteger(), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("width", Integer(), nullable=True),
    Column("height", Integer(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    # Lifecycle (docs/design.md 6.4). Housekeeping removes the file once ``retained_until`` has
    # passed (NULL: kept until deleted) unless ``legal_hold`` suspends it.
    Column("retained_until", UtcDateTime(), nullable=True),
    Column("legal_hold", Boolean(), nullable=False, server_default=false()),
    # Bumped by a revocation: proxy links sign it, so every link issued before fails.
    Column("link_generation", Integer(), nullable=False, server_default="0"),
    # The document's AES-256-GCM data key wrapped under the master key (NULL: the object
    # is stored in the clear). Deleting the row destroys the key: crypto-shredding.
    Column("data_key", Text(), nullable=True),
    # What the sealed data key is bound to (its associated data): 2 = the file's id, owner,
    # object key and link generation; NULL = the id alone (rows of 0007 and older, rebound
    # at the next start).
    Column("data_key_binding", Integer(), nullable=True),
    # What privacy stripping removed before storing, comma-separated (NULL: nothing).
    Column("metadata_removed", String(255), nullable=True),
    # Whether the metadata policy ran on it (FALSE: stored before stripping existed).
    Column("metadata_checked", Boolean(), nullable=False, server_default=false()),
    # The file list (docs/design.md 3.5): one partner's files in list order.
    Index("ix_files_listing", "client_id", "created_at", "id"),
    # The operator's list of every client's files (berkas files list), in the same order.
    Index("ix_files_newest", "created_at", "id"),
    Index("ix_files_duplicates", "client_id", "category", "sha256", "created_at", "id"),
    Index("ix_files_retained_until", "retained_until"),
)
# The audit trail (docs/design.md 6.3): append-only, never updated. No foreign key to files: the
# events of a deleted file outlive it (they say when and by whom it was deleted).
file_events = Table(
    "file_events",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("file_id", String(64), nullable=False),
    Column("client_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("detail", Text(), nullable=True),
    # The request id of the access-log line of the request that caused it (NULL for
    # housekeeping), and who acted for operator events (the OS user or --actor).
    Column("request_id", String(128), nullable=True),
    Column("actor", String(255), nullable=True),
    Index("ix_file_events_file_id", "file_id"),
    Index("ix_file_events_client_id_at", "client_id", "at"),
    Index("ix_file_events_at", "at"),
)
# Leases on cluster-wide chores (the retention sweep): whichever node holds the lease
# does the round, so two nodes never delete the same expired document twice.
task_leases = Table(
    "task_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)
replays = Table(
    "replays",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("fingerprint", String(128), nullable=False),
    Column("status", Integer(), nullable=True),
    Column("body", LargeBinary(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)
# Blob keys an upload is about to write, kept until its row commits (same transaction)
# or its blob is removed: after a crash, a restarting node deletes the blobs it finds
# here that have no row, so no orphan bytes are left behind (docs/design.md 5.5).
pending_blobs = Table(
    "pending_blobs",
    metadata,
    Column("key", String(1024), primary_key=True),
    Column("node_id", Integer(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_pending_blobs_node_id", "node_id"),
)
# Node numbers leased by live nodes (docs/design.md 5.6): a node renews its lease while it serves,
# so two live nodes never mint ids with the same number.
node_leases = Table(
    "node_leases",
    metadata,
    Column("node_id", Integer(), primary_key=True, autoincrement=False),
    Column("holder", String(128), nullable=False),
    Column("label", String(255), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
)
# The RSA keys tokens are signed with, shared by every node (docs/design.md 5.7). ``is_current`` is
# TRUE for exactly one row and NULL for the others: the unique constraint (NULLs are
# distinct on SQLite and PostgreSQL) keeps two racing rotations from both winning.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("retired_at", UtcDateTime(), nullable=True),
    Column("is_current", Boolean(), nullable=True),
    # The PKCS8 PEM, sealed under the master key.
    Column("private_key", Text(), nullable=False),
    UniqueConstraint("is_current"),
)
# Client ids whose secret an older release stored in clear, listed by migration 0008 when
# it ran: the only clear values `berkas secrets seal-legacy` may seal (once).
legacy_clear_secrets = Table(
    "legacy_clear_secrets",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("found_at", UtcDateTime(), nullable=False),
)
# Every master key that has sealed in this database, by id, with when it first did: what
# `berkas secrets status` measures a key's age by (the rotation schedule, README).
master_keys = Table(
    "master_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("first_used_at", UtcDateTime(), nullable=False),
)
# Named secrets of the service itself (the link secret), sealed under the master key.
service_secrets = Table(
    "service_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)
