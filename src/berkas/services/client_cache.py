"""Partner clients read through a small in-memory cache (docs/design.md 2.1): the signed
and bearer paths skip the row read and the unsealing of its secrets on most requests."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from berkas.core.models import Client
from berkas.core.ports import ChangeSignal, ClientRepository

# How long a node may act on a client row it read earlier: the staleness bound across
# processes. Nodes share only the database (docs/design.md 5.6) and `berkas clients
# disable` / `rotate-secret` run as their own processes writing it directly, so no other
# process's cache can be told; a disable or a rotation made there is refused on every
# node within this bound. One made through this process's ClientService is seen at once,
# and so is one made by another process on the same data dir (the CLI beside the serving
# node): it touches a marker file every lookup here stats (adapters/change_marker.py).
CLIENT_CACHE_SECONDS = 10.0
# Bounded memory: least recently used entries go first. Far above a fleet's partners;
# unknown Client-Ids are never cached, so made-up ids cannot fill it.
MAX_CACHED_CLIENTS = 1024


class CachedClients:
    """A ``ClientRepository`` that answers ``get`` from memory for up to ``ttl`` seconds.

    Every write through it forgets the client's entry before returning, so a change made
    in this process is seen by its next request. Thread-safe: request threads share it.
    """

    def __init__(
        self,
        clients: ClientRepository,
        clock: Callable[[], float] = time.monotonic,
        *,
        ttl: float = CLIENT_CACHE_SECONDS,
        max_entries: int = MAX_CACHED_CLIENTS,
        changes: ChangeSignal | None = None,
    ) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError(
                f"a client cache needs ttl >= 0 and max_entries >= 1 ({ttl}, {max_entries})"
            )
        self._clients = clients
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Client]] = OrderedDict()
        # Bumped by every invalidation: a read that started before one must not store
        # the row it read, which may predate the change.
        self._epoch = 0
        # Touched by every change through a ClientService of this data dir, whichever
        # process made it (the CLI's included): every entry goes when it moves.
        self._changes = changes
        self._seen = changes.version() if changes is not None else 0

    def get(self, client_id: str) -> Client | None:
        """The client, from memory when read less than ``ttl`` seconds ago."""
        return self.remembered(client_id)[0]

    def remembered(self, client_id: str) -> tuple[Client | None, bool]:
        """As ``get``, and whether the answer came from memory."""
        now = self._clock()
        if self._changes is not None and (version := self._changes.version()) != self._seen:
            with self._lock:
                self._seen = version
            self.forget()
        with self._lock:
            entry = self._entries.get(client_id)
            if entry is not None and now - entry[0] < self._ttl:
                self._entries.move_to_end(client_id)
                return entry[1], True
            epoch = self._epoch
        client = self._clients.get(client_id)
        with self._lock:
            if client is None:
                self._entries.pop(client_id, None)
            elif epoch == self._epoch:
                self._entries[client_id] = (now, client)
                self._entries.move_to_end(client_id)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return client, False

    def fresh(self, client_id: str) -> Client | None:
        """The client as the database has it now (the entry is replaced): for a check
        that failed against a cached entry, which may predate a rotation elsewhere."""
        self.forget(client_id)
        return self.get(client_id)

    def forget(self, client_id: str | None = None) -> None:
        """Drop one client's entry (None: every entry)."""
        with self._lock:
            self._epoch += 1
            if client_id is None:
                self._entries.clear()
            else:
                self._entries.pop(client_id, None)

    def _changed(self, client_id: str) -> None:
        """A write went through: forget it here, and tell the data dir's other processes."""
        self.forget(client_id)
        if self._changes is not None:
            # This process sees the marker move too and drops its other entries once:
            # cheaper than telling its own notify apart from another process's.
            self._changes.notify()

    def add(self, client: Client) -> None:
        self._clients.add(client)
        self.forget(client.client_id)  # unknown ids are never cached: nobody to tell

    def list(self) -> list[Client]:
        return self._clients.list()

    def set_enabled(self, client_id: str, enabled: bool) -> bool:
        try:
            return self._clients.set_enabled(client_id, enabled)
        finally:
            self._changed(client_id)

    def set_label(self, client_id: str, label: str | None) -> bool:
        try:
            return self._clients.set_label(client_id, label)
        finally:
            self._changed(client_id)

    def rotate_secret(
        self,
        client_id: str,
        secret_key: str,
        rotated_at: datetime,
        previous_expires_at: datetime | None,
    ) -> Client | None:
        try:
            return self._clients.rotate_secret(
                client_id, secret_key, rotated_at, previous_expires_at
            )
        finally:
            self._changed(client_id)

    def forget_expired_secrets(self, now: datetime) -> int:
        # A cached previous secret past its grace never verifies (Client.previous_secret_at
        # checks the time), so this only keeps memory in step with the table.
        try:
            return self._clients.forget_expired_secrets(now)
        finally:
            self.forget()
