"""The secrets bootstrap: master keys (BERKAS_MASTER_KEY, a key file or the data dir's),
the signing key ring, the link secret, the start-up check that no sealed column holds a
value in clear, and ``berkas secrets status`` / ``seal-legacy``."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from berkas.adapters.clock import SystemClock
from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.engine import sqlite_file
from berkas.adapters.key_import import import_key_directory
from berkas.adapters.keys import KeyRing, KeyStore
from berkas.adapters.sealing import (
    Sealer,
    clear_value_message,
    create_key_file,
    parse_master_key,
    read_key_file,
)
from berkas.config import Settings
from berkas.core.models import UpgradeBacklog
from berkas.core.ports import Clock
from berkas.core.wire import iso8601
from berkas.services.tokens import LEEWAY_SECONDS
from berkas.wiring.datadir import (
    check_existing,
    database_shown,
    needs_data_dir,
    refuse_foreign_owner,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


# Longer than a serving node's key sync (api.app.KEY_SYNC_SECONDS) with room to spare:
# after a rotation elsewhere a node may sign with the retired key until it syncs.
_KEY_SYNC_MARGIN = timedelta(minutes=1)


# The name of the link secret in the database's service_secrets.
LINK_SECRET_NAME = "link-secret"  # noqa: S105 - a row name, not a secret


def secrets_status(settings: Settings) -> dict[str, object]:
    """What ``berkas secrets status`` prints: the master keys this process holds, how many
    secrets of each kind each master key id seals, how old the sealing key is against
    the rotation schedule, which older keys are still held and whether anything still
    needs them, and any value found in clear.

    Opens no secret, so it works when a needed master key is missing (the case it is
    there to diagnose); creates nothing.
    """
    check_existing(settings)
    master = sealer(settings, create=False)
    database = SqlDatabase.from_url(settings.resolved_database_url, sealer=master)
    try:
        sealed = database.sealed.by_master_key()
        ages = database.sealed.master_key_ages()
        clear = database.sealed.clear_values()
        legacy = database.sealed.legacy_clear()
        backlog = database.files.backlog()
    finally:
        database.close()
    current = master.current.kid
    first_used = ages.get(current)
    now = SystemClock().now()
    age_days = None if first_used is None else (now - first_used).days
    still_sealing = {
        kid: sum(counts.get(kid, 0) for counts in sealed.values())
        for kid in {kid for counts in sealed.values() for kid in counts}
        if kid not in (current, "clear")
    }
    return {
        "master_keys": list(master.kids),
        "sealing_with": current,
        "sealed": sealed,
        "sealing_key_first_used": None if first_used is None else iso8601(first_used),
        "sealing_key_age_days": age_days,
        "rotate_every_days": settings.master_key_rotation_days,
        "rotation_due": age_days is not None and age_days >= settings.master_key_rotation_days,
        # Older keys this process still holds: once nothing needs them (rekey done),
        # destroying them is what makes old backups unreadable.
        "older_keys_held": [kid for kid in master.kids if kid != current],
        "values_under_older_keys": still_sealing,
        "clear_values": [f"{column} of {row!r}" for column, row in clear],
        "legacy_clear_client_secrets": legacy,
        # Documents older than the current policy; `berkas files upgrade` brings them up
        # to it (README, Upgrading).
        **_documents_behind(settings, backlog),
    }


def _documents_behind(settings: Settings, backlog: UpgradeBacklog) -> dict[str, int]:
    return {
        "documents_not_encrypted": backlog.in_clear if settings.encrypts_at_rest else 0,
        "documents_not_stripped": backlog.unchecked,
        "documents_without_retention": sum(
            count
            for category, count in backlog.without_retention.items()
            if settings.retention(category) is not None
        ),
    }


def status_problems(report: dict[str, object]) -> list[str]:
    """What ``berkas secrets status --check`` fails on, one sentence each."""
    problems = []
    if report["rotation_due"]:
        problems.append(
            f"the sealing master key is {report['sealing_key_age_days']} days old; the "
            f"schedule is {report['rotate_every_days']} days (BERKAS_MASTER_KEY_ROTATION_DAYS): "
            "rotate it (README, Secrets at rest and the master key)"
        )
    held = report["older_keys_held"]
    needed = report["values_under_older_keys"]
    if needed:
        problems.append(
            f"values are still sealed under older master keys {needed}: run `berkas secrets rekey`"
        )
    elif held:
        problems.append(
            f"older master keys {held} are still configured but nothing needs them: remove "
            "them from every node and destroy them, or old backups stay readable"
        )
    if report["clear_values"]:
        problems.append(f"values in clear in sealed columns: {report['clear_values']}")
    return problems


def seal_legacy(settings: Settings) -> list[str]:
    """``berkas secrets seal-legacy``: migrate, then seal the client secrets an older
    release stored in clear (the ones migration 0008 listed) and nothing else; once.
    Returns the client ids sealed; ``SealingError`` when there is nothing to do or it ran
    before."""
    path = sqlite_file(settings.resolved_database_url)
    refuse_foreign_owner(settings)
    missing_dir = needs_data_dir(settings) and not settings.data_dir.is_dir()
    if missing_dir or (path is not None and not path.is_file()):
        raise ValueError(
            f"no berkas data dir or database at {settings.data_dir}; seal-legacy upgrades "
            "an existing one (pass --data-dir)"
        )
    os.umask(0o077)
    database = SqlDatabase.from_url(
        settings.resolved_database_url, sealer=sealer(settings, create=True)
    )
    try:
        database.migrate()
        sealed = database.sealed.seal_legacy(SystemClock().now())
        # The clear values must not linger in the SQLite file's free pages or its WAL.
        database.compact()
    finally:
        database.close()
    return sealed


def key_ring(settings: Settings, store: KeyStore, clock: Clock, *, create: bool) -> KeyRing:
    return KeyRing.open(
        store,
        clock=clock,
        # A retired key verifies for as long as a token it signed can live, plus the
        # leeway, plus a margin for nodes that signed with it before their next key sync.
        max_token_lifetime=timedelta(minutes=settings.token_max_minutes)
        + timedelta(seconds=LEEWAY_SECONDS)
        + _KEY_SYNC_MARGIN,
        bits=settings.rsa_key_bits,
        create=create,
    )


def sealer(settings: Settings, *, create: bool) -> Sealer:
    """The master keys, from BERKAS_MASTER_KEY, BERKAS_MASTER_KEY_FILE or the data dir."""
    previous = [
        parse_master_key(part, where="BERKAS_MASTER_KEY_PREVIOUS")
        for part in (
            settings.master_key_previous.get_secret_value().split(",")
            if settings.master_key_previous is not None
            else []
        )
        if part.strip()
    ]
    if settings.master_key is not None:
        current = parse_master_key(
            settings.master_key.get_secret_value(), where="BERKAS_MASTER_KEY"
        )
        return Sealer(current, previous, source="BERKAS_MASTER_KEY")
    path = settings.master_key_file
    if path is None:
        # Embedded default: one command on a laptop (README). A fleet sets the same
        # BERKAS_MASTER_KEY on every node instead; prepare warns when it does not.
        path = settings.default_master_key_file
        if not path.exists():
            if not create:
                raise ValueError(
                    f"no master key at {path}; `berkas serve` or `berkas db migrate` creates "
                    "it (or set BERKAS_MASTER_KEY)"
                )
            if create_key_file(path):
                warn_new_master_key(settings, path)
    first, *older = read_key_file(path)
    return Sealer(first, [*older, *previous], source=str(path))


def warn_new_master_key(settings: Settings, path: Path) -> None:
    # Said once, by the process that created it (first writer wins): an upgrade from a
    # release before sealed secrets makes this file silently otherwise, and a backup
    # routine written for that release copies the database and the blobs only.
    log.warning(
        "created the master key %s: it opens every partner secret, signing key and "
        "document data key in the database (%s). Back it up now, apart from the database "
        "and the store (%s): a backup without it loses every secret, one that keeps it "
        "beside them gives them away (README, Secrets at rest and the master key)",
        path,
        database_shown(settings),
        settings.resolved_storage_url,  # file:// or s3://bucket/prefix: no credentials
    )


def prepare_secrets(settings: Settings, database: SqlDatabase) -> None:
    """Secrets into the database, sealed: the first signing key and the link secret, an
    older data dir's key directory and link-secret file; data keys rebound to their rows.

    A value in clear in any sealed column stops the start, naming it: nothing here seals
    what it finds in the database (README "Secrets at rest and the master key").
    """
    now = SystemClock().now()
    if (
        database.dialect != "sqlite"
        and settings.master_key is None
        and settings.master_key_file is None
    ):
        log.warning(
            "the master key is this node's own file %s; every other node of the fleet "
            "needs the same key: set BERKAS_MASTER_KEY (or BERKAS_MASTER_KEY_FILE) on all",
            settings.default_master_key_file,
        )
    refuse_clear_values(database)
    # The link secret first: opening it proves this node's master key is the one the
    # database was sealed with before this node writes anything sealed (a node with the
    # wrong key must not leave rows no other node can open).
    legacy = settings.link_secret_file
    if legacy.exists():
        value = legacy.read_text().strip().encode()
        if database.service_secrets.ensure(LINK_SECRET_NAME, value, now) != value:
            log.warning(
                "the database already has a link secret; links signed with %s stop working",
                legacy,
            )
        legacy.unlink()  # stored (committed) first: a crash in between imports again
        log.warning("moved the link secret from %s into the database", legacy)
    else:
        database.service_secrets.ensure(LINK_SECRET_NAME, secrets.token_hex(32).encode(), now)
    imported = import_key_directory(database.signing_keys, settings.keys_dir, now)
    if imported:
        log.warning(
            "moved %d signing key(s) from %s into the database", imported, settings.keys_dir
        )
    key_ring(settings, database.signing_keys, SystemClock(), create=True)
    database.sealed.record_master_key(now)
    rebound = database.sealed.rebind_data_keys()
    if rebound:
        log.warning(
            "bound %d document data key(s) to their file's owner, object key and link generation",
            rebound,
        )


def refuse_clear_values(database: SqlDatabase) -> None:
    """Raise ``ValueError`` naming every value in clear in a sealed column.

    berkas seals every value it writes there, so a clear one was written by an older
    release (client secrets before 0004: `berkas secrets seal-legacy` seals those, once)
    or into the database without the master key; the latter is never sealed or used.
    """
    found = database.sealed.clear_values()
    if not found:
        return
    legacy = set(database.sealed.legacy_clear())
    planted = [
        (column, row)
        for column, row in found
        if not (column == "clients.secret_key" and row in legacy)
    ]
    problems = [clear_value_message(column, row) for column, row in planted]
    if legacy:
        problems.append(
            f"{len(legacy)} client secret key(s) ({', '.join(sorted(legacy))}) were stored in "
            "clear by a berkas release before secrets were sealed (listed when this "
            "database was upgraded to schema 0008); run `berkas secrets seal-legacy` once "
            "to seal them (README, Upgrading)"
        )
    raise ValueError("; ".join(problems))


def link_secret(settings: Settings, database: SqlDatabase) -> bytes:
    if settings.link_secret is not None:
        return settings.link_secret.encode()
    # Shared by every node through the database (docs/design.md 5.7); never any client's secret.
    value = database.service_secrets.get(LINK_SECRET_NAME)
    if value is None:
        raise ValueError(
            "no link secret in the database yet; `berkas serve` or `berkas db migrate` "
            "creates it (or set BERKAS_LINK_SECRET)"
        )
    return value
