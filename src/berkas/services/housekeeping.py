"""A node's periodic chores: forget Request-Ids past retention, drop expired signing keys."""

from __future__ import annotations

import logging
from datetime import timedelta

from berkas.core.keys import PrunableKeys
from berkas.core.ports import Clock, ReplayRepository

log = logging.getLogger(__name__)


class Housekeeping:
    """Run at start and then every ``interval`` by the serving process."""

    def __init__(
        self,
        replays: ReplayRepository,
        keys: PrunableKeys,
        clock: Clock,
        *,
        retention: timedelta,
        interval: timedelta,
    ) -> None:
        self._replays = replays
        self._keys = keys
        self._clock = clock
        self._retention = retention
        self.interval = interval

    def run_once(self) -> int:
        """One round; returns how many Request-Id records were forgotten."""
        for kid in self._keys.prune():
            log.info("removed expired signing key %s", kid)
        cutoff = self._clock.now() - self._retention
        purged = self._replays.purge_before(cutoff)
        if purged:
            log.info("forgot %d Request-Id record(s) older than %s", purged, cutoff.isoformat())
        return purged
