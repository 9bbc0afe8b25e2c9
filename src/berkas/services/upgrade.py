"""``berkas files upgrade``: documents an older release stored, brought up to the current
policy (README, Upgrading): retention stamped from upload time, documents in clear encrypted, and
metadata stripped when asked. Each document is its own unit; a rerun skips what is done.

A rewritten document gets a new object under a new key, written before the row moves to
it; the row moves in one conditional transaction, and only then is the old object
removed. Intents (``pending_blobs``) cover both objects, so a crash at any point leaves
the old document or the new one, and what ``recover`` removes at the next run (or at the
next start of a node with the node number the run leased). The rewrite of one document
is in services/document_upgrade.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from berkas.core import content
from berkas.core.codes import Code
from berkas.core.envelope import EnvelopeError
from berkas.core.errors import BerkasError, Conflict
from berkas.core.ids import MAX_NODE
from berkas.core.models import StoredFile
from berkas.core.ports import BlobStore, Clock, DataKeys, FileRepository, TaskLeaseRepository
from berkas.services.document_upgrade import DocumentUpgrader
from berkas.services.documents import DocumentStore
from berkas.services.nodes import NodeLeases

log = logging.getLogger(__name__)

# One upgrade at a time, fleet-wide: two runs would rewrite the same documents twice.
UPGRADE_TASK = "files-upgrade"
# The run's lease outlives its last renewal by this long; it renews before each document.
_TASK_TTL = timedelta(minutes=2)
# A row changed by a concurrent revoke is read again and tried again, this many times.
_ATTEMPTS = 3
_PAGE = 200

Progress = Callable[[int, int | None], None]


@dataclass(slots=True)
class UpgradeReport:
    """What a run did: documents encrypted, stripped (bytes changed), checked (the
    metadata policy ran and left the bytes alone), files given a retention date, documents
    left as they were, and the ones that failed with why."""

    encrypted: int = 0
    stripped: int = 0
    checked: int = 0
    stamped: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """The one line ``berkas files upgrade`` prints."""
        return (
            f"encrypted {self.encrypted}, stripped {self.stripped}, checked {self.checked}, "
            f"stamped {self.stamped}, skipped {self.skipped}, failed {len(self.failed)}"
        )


class UpgradeBusy(Conflict):
    """Another ``berkas files upgrade`` holds the fleet-wide lease."""


class UpgradeService:
    """Brings stored documents up to the current policy (``berkas files upgrade``)."""

    def __init__(
        self,
        *,
        files: FileRepository,
        blobs: BlobStore,
        clock: Clock,
        tasks: TaskLeaseRepository,
        nodes: NodeLeases,
        holder: str,
        spool_dir: Path,
        data_keys: DataKeys,
        encrypt: bool,
        retention: Callable[[str], timedelta | None],
        keep_metadata: frozenset[str],
        image_limits: content.ImageLimits,
    ) -> None:
        self._files = files
        self._blobs = blobs
        self._clock = clock
        self._tasks = tasks
        self._nodes = nodes
        self._holder = holder
        self._encrypt = encrypt  # BERKAS_ENCRYPT_AT_REST: documents in clear get encrypted
        self._retention = retention
        # The run's node number is leased at each run, so the store is told it per call.
        self._store = DocumentStore(files=files, blobs=blobs, clock=clock, node_id=0)
        self._documents = DocumentUpgrader(
            files=files,
            blobs=blobs,
            documents=self._store,
            clock=clock,
            spool_dir=spool_dir,
            data_keys=data_keys,
            encrypt=encrypt,
            keep_metadata=keep_metadata,
            image_limits=image_limits,
        )
        self._node_id: int | None = None
        self._renewed_at = clock.now()
        self._actor: str | None = None

    def pending(self, *, strip: bool) -> int:
        """How many documents a run would rewrite or check (not counting retention)."""
        backlog = self._files.backlog()
        total = backlog.in_clear if self._encrypt else 0
        if strip:
            total += backlog.unchecked - (backlog.in_clear_unchecked if self._encrypt else 0)
        return total

    def run(
        self,
        *,
        strip: bool = False,
        limit: int | None = None,
        progress: Progress | None = None,
        actor: str | None = None,
    ) -> UpgradeReport:
        """Stamp retention, then visit up to ``limit`` documents in id order: encrypt those
        in clear (when encryption at rest is on) and, with ``strip``, apply the metadata
        policy to those never checked; each ``upgraded`` event names ``actor``.
        ``UpgradeBusy`` when another run holds the lease."""
        self._actor = self._documents.actor = actor
        report = UpgradeReport()
        self._start()
        try:
            self.recover()
            report.stamped = self._stamp()
            total = self.pending(strip=strip)
            total = total if limit is None else min(total, limit)
            if progress is not None:
                progress(0, total)
            for visited, stored in enumerate(self._outdated(strip), start=1):
                if limit is not None and visited > limit:
                    break
                self._renew()
                self._one(stored, strip, report)
                if progress is not None:
                    progress(visited, max(total, visited))
        finally:
            self._stop()
        return report

    def recover(self) -> int:
        """Remove objects this run's node number reserved whose row never pointed at them
        (a crash between write and swap), and finish removals a crash cut short: the same
        rule as a node's start (``DocumentStore.recover``). Returns how many."""
        if self._node_id is None:
            raise RuntimeError("recover runs under the run's node lease")
        removed = self._store.recover(self._node_id)
        if removed:
            log.warning("removed %d object(s) an interrupted upgrade left", removed)
        return removed

    # --- leases ----------------------------------------------------------------------

    def _start(self) -> None:
        now = self._clock.now()
        if not self._tasks.acquire(UPGRADE_TASK, self._holder, now + _TASK_TTL, now):
            raise UpgradeBusy(
                "another berkas files upgrade is running on this fleet; wait for it to end "
                f"(or, if it was killed, for its lease to lapse within {_minutes(_TASK_TTL)}) "
                "and run this again.",
                code=Code.REQUEST_IN_PROGRESS,
            )
        self._renewed_at = now
        try:
            # The highest free number: serving nodes take the lowest (BERKAS_NODE_ID=auto)
            # or a small fixed one, and one restarting meanwhile must find its own free.
            self._node_id = self._documents.node_id = self._claim()
        except BaseException:
            self._tasks.release(UPGRADE_TASK, self._holder)
            raise

    def _claim(self) -> int:
        for candidate in range(MAX_NODE, -1, -1):
            try:
                return self._nodes.claim(candidate)
            except Conflict:
                continue
        raise Conflict("every node number is held by a live node.", code=Code.NODE_ID_TAKEN)

    def _renew(self) -> None:
        now = self._clock.now()
        if now - self._renewed_at < _TASK_TTL / 4:
            return
        self._renewed_at = now
        self._nodes.heartbeat()
        if not self._tasks.acquire(UPGRADE_TASK, self._holder, now + _TASK_TTL, now):
            raise UpgradeBusy(
                "this upgrade stalled past its lease and another run took over; it stopped "
                "(what it did is kept; the other run goes on).",
                code=Code.REQUEST_IN_PROGRESS,
            )

    def _stop(self) -> None:
        self._nodes.release()
        self._tasks.release(UPGRADE_TASK, self._holder)

    # --- retention -------------------------------------------------------------------

    def _stamp(self) -> int:
        stamped = 0
        now = self._clock.now()
        for category in sorted(self._files.backlog().without_retention):
            span = self._retention(category)
            if span is None:
                continue
            # To the second: SQL date arithmetic is exact in whole seconds on every backend.
            whole = timedelta(seconds=int(span.total_seconds()))
            stamped += self._files.stamp_retention(category, whole, now, self._actor)
        return stamped

    # --- documents -------------------------------------------------------------------

    def _outdated(self, strip: bool) -> Iterator[StoredFile]:
        after = ""
        while page := self._files.outdated(
            after=after, limit=_PAGE, in_clear=self._encrypt, unchecked=strip
        ):
            yield from page
            after = page[-1].id
            if len(page) < _PAGE:
                return

    def _one(self, stored: StoredFile, strip: bool, report: UpgradeReport) -> None:
        for _ in range(_ATTEMPTS):
            try:
                done = self._documents.upgrade(stored, strip)
            except (BerkasError, EnvelopeError, OSError) as exc:
                why = f"{exc.message} ({exc.code})" if isinstance(exc, BerkasError) else str(exc)
                log.warning("%s was not upgraded, it stays as it was: %s", stored.id, why)
                report.failed.append((stored.id, why))
                return
            if done is not None:
                _count(report, done)
                return
            # The row changed under us: deleted (then there is nothing to do) or revoked
            # (then its new link generation is the one to bind the data key to).
            current = self._files.get(stored.id)
            if current is None or not self._needs(current, strip):
                report.skipped += 1
                return
            stored = current
        report.failed.append((stored.id, "changed by concurrent requests each time; run again"))

    def _needs(self, stored: StoredFile, strip: bool) -> bool:
        encrypt = self._encrypt and stored.data_key is None
        return encrypt or (strip and not stored.metadata_checked and not stored.legal_hold)


def _count(report: UpgradeReport, actions: tuple[str, ...]) -> None:
    if not actions:
        report.skipped += 1
    for action in actions:
        if action == "encrypted":
            report.encrypted += 1
        elif action == "checked":
            report.checked += 1
        else:
            report.stripped += 1


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds() // 60)} minutes"
