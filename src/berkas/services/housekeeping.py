"""A node's periodic chores: forget Request-Ids past retention, drop expired signing keys
and client secrets whose rotation grace has ended, and remove documents past their
retention (one node at a time, under a database lease)."""

from __future__ import annotations

import logging
from datetime import timedelta

from berkas.core.keys import PrunableKeys
from berkas.core.ports import ClientRepository, Clock, ReplayRepository, TaskLeaseRepository
from berkas.services.files import FileService

log = logging.getLogger(__name__)

RETENTION_TASK = "retention"


class Housekeeping:
    """Run at start and then every ``interval`` by the serving process."""

    def __init__(
        self,
        replays: ReplayRepository,
        keys: PrunableKeys,
        clock: Clock,
        *,
        clients: ClientRepository,
        retention: timedelta,
        interval: timedelta,
        upload_retention: timedelta | None = None,
        files: FileService | None = None,
        tasks: TaskLeaseRepository | None = None,
        holder: str = "",
    ) -> None:
        self._files = files
        self._tasks = tasks
        self._holder = holder
        self._clients = clients
        self._replays = replays
        self._keys = keys
        self._clock = clock
        self._retention = retention
        self._upload_retention = retention if upload_retention is None else upload_retention
        self.interval = interval
        # Signed Request-Id records hold an answer only as long as a replay can still be
        # accepted: they are purged at least twice per retention, whatever the interval.
        self.purge_interval = min(interval, retention / 2)

    def run_once(self) -> int:
        """One round; returns how many Request-Id records were forgotten."""
        for kid in self._keys.prune():
            log.info("removed expired signing key %s", kid)
        # A replaced secret no longer verifies once its grace ends (RequestVerifier checks
        # the time); deleting it then keeps no revoked secret in the database or its
        # backups longer than needed (OWASP Secrets Management Cheat Sheet, "Secret
        # Lifecycle": revoked and expired secrets are removed, not left lying around).
        forgotten = self._clients.forget_expired_secrets(self._clock.now())
        if forgotten:
            log.info("deleted %d client secret(s) whose rotation grace has ended", forgotten)
        purged = self.purge_replays()
        self._expire_documents()
        return purged

    def purge_replays(self) -> int:
        """Forget signed Request-Ids past their retention and upload Idempotency-Keys past
        theirs; returns how many."""
        now = self._clock.now()
        cutoff = now - self._retention
        purged = self._replays.purge_before(cutoff, uploads_before=now - self._upload_retention)
        if purged:
            log.info("forgot %d Request-Id record(s) older than %s", purged, cutoff.isoformat())
        return purged

    def _expire_documents(self) -> None:
        if self._files is None or self._tasks is None:
            return
        # Every node runs this round; the lease lets one of them do the work, so two
        # nodes never race to delete the same documents. It outlives two rounds, and the
        # holder renews it each round: a node that dies hands over within two intervals.
        now = self._clock.now()
        if not self._tasks.acquire(RETENTION_TASK, self._holder, now + 2 * self.interval, now):
            return
        removed = self._files.expire(by=self._holder)
        if removed:
            log.info("removed %d document(s) whose retention has ended", removed)
