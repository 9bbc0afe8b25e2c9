"""Overload limits (README "Limits"): per-client token buckets for requests and uploads,
the per-node cap on uploads in flight, and the per-client budget of refused ``file_url``
fetches. Everything lives in this process's memory; nothing here does I/O.

Why node-local and not shared through the database: a shared counter costs a database
round trip (a durable write) per request on the hot path, where these checks cost about
a microsecond; a load balancer spreads one client's requests over the nodes, so each
node seeing its share against the full limit bounds a fleet at N times the setting,
which an operator who wants a fleet-wide bound divides by N. The same holds for the
refused-fetch budget: N nodes allow N times the budget of refusals, still a small and
bounded number, and the egress policy (docs/design.md 4) refuses every non-public address
whatever the budget says; the budget only slows probing of what the refusals reveal.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from berkas.core.codes import FETCH_REFUSAL_STATUS, Code
from berkas.core.errors import FetchRefused, RateLimited

Monotonic = Callable[[], float]

# A client's bucket that has refilled to full is the same as no bucket: past this many
# remembered clients, full buckets are forgotten (keys are authenticated client ids, so
# this only bounds memory on a server with very many partners).
_PRUNE_ABOVE = 10_000

# No bucket says when an upload in progress ends; a second is the shortest wait
# Retry-After can state (RFC 9110 section 10.2.3: delay-seconds is a whole number).
_SLOT_RETRY_AFTER = 1


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket's shape: ``per_second`` sustained, up to ``burst`` at once.

    Either being 0 turns the limit off.
    """

    per_second: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.per_second > 0 and self.burst > 0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class Buckets:
    """One token bucket per key, all of one ``Rate``: it refills at the sustained rate up
    to the burst, and a request takes one token or is told how long to wait."""

    def __init__(self, rate: Rate, clock: Monotonic = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._prune_at = _PRUNE_ABOVE
        # The routes call from the event loop only; the lock keeps a future caller on a
        # worker thread correct for the price of an uncontended acquire.
        self._lock = threading.Lock()

    def take(self, key: str) -> int:
        """Take a token for ``key``: 0 when taken, else the whole seconds until one is
        there (nothing is taken then, so a refused request costs nothing)."""
        if not self.rate.enabled:
            return 0
        with self._lock:
            bucket = self._refilled(key)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0
            return self._wait(bucket)

    def give_back(self, key: str) -> None:
        """Return a token taken by ``take`` whose request turned out not to count."""
        if not self.rate.enabled:
            return
        with self._lock:
            bucket = self._refilled(key)
            bucket.tokens = min(float(self.rate.burst), bucket.tokens + 1)

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        rate = self.rate
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(rate.burst), now)
            return bucket
        # max(): a clock that does not move forward refills nothing (never drains).
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(float(rate.burst), bucket.tokens + elapsed * rate.per_second)
        bucket.at = now
        return bucket

    def _wait(self, bucket: _Bucket) -> int:
        # Rounded up: a client that waits exactly this long finds its token there.
        return max(1, math.ceil((1 - bucket.tokens) / self.rate.per_second))

    def _prune(self, now: float) -> None:
        rate = self.rate
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.at) * rate.per_second >= rate.burst
        ]
        for key in full:
            del self._buckets[key]
        # The next sweep waits until the map has doubled: amortised O(1) per new client
        # even when every bucket is in use.
        self._prune_at = max(_PRUNE_ABOVE, 2 * len(self._buckets))


class UploadSlots:
    """The per-node cap on uploads in flight (0: no cap)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold a slot for the ``with`` block, or raise ``too_many_uploads`` at once.

        Released however the block ends: an answer, an error, a client that went away
        (the body's stream raises) or a cancelled task (``CancelledError`` passes here).
        """
        with self._lock:
            if self.limit and self.in_flight >= self.limit:
                raise RateLimited(
                    f"this node is receiving {self.limit} uploads already, the most it takes "
                    f"at once; retry in {_SLOT_RETRY_AFTER} s (another node may take it now).",
                    code=Code.TOO_MANY_UPLOADS,
                    retry_after=_SLOT_RETRY_AFTER,
                )
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1


class ClientLimits:
    """What the routes ask before they do work for a client (README "Limits")."""

    def __init__(
        self,
        *,
        requests: Rate,
        uploads: Rate,
        concurrent_uploads: int,
        fetch_refusals: Rate,
        clock: Monotonic = time.monotonic,
    ) -> None:
        self.requests = Buckets(requests, clock)
        self.uploads = Buckets(uploads, clock)
        self.slots = UploadSlots(concurrent_uploads)
        self.fetch_refusals = Buckets(fetch_refusals, clock)

    def admit_request(self, client_id: str) -> None:
        """Count one authenticated request, or raise ``rate_limited``."""
        wait = self.requests.take(client_id)
        if wait:
            rate = self.requests.rate
            raise RateLimited(
                f"client {client_id} is over its request rate on this node: "
                f"{rate.per_second:g} per second, bursts of {rate.burst}; retry in {wait} s.",
                code=Code.RATE_LIMITED,
                retry_after=wait,
            )

    @contextmanager
    def upload(self, client_id: str) -> Iterator[None]:
        """Admit one upload for the ``with`` block: the client's upload rate, then a slot
        on this node. Call before the body is read, so a refusal reads none of it."""
        wait = self.uploads.take(client_id)
        if wait:
            rate = self.uploads.rate
            raise RateLimited(
                f"client {client_id} is over its upload rate on this node: "
                f"{rate.per_second:g} per second, bursts of {rate.burst}; retry in {wait} s.",
                code=Code.UPLOAD_RATE_LIMITED,
                retry_after=wait,
            )
        with self.slots.hold():
            yield

    @contextmanager
    def fetching(self, client_id: str) -> Iterator[None]:
        """Around a ``file_url`` upload: refused with ``fetch_budget_exhausted`` before
        any fetch once the client's refused fetches have used up its budget.

        A token is taken up front and given back unless the fetch itself is refused (a
        blocked address or port, DNS failure, timeout: the 422 codes), so concurrent
        probes cannot overdraw the budget. A fetched body refused for its size or type
        (413/415 codes) is the partner's document, not a probe, and costs nothing.
        """
        # Probing is what the budget slows: each refusal says something about a network
        # the partner cannot see (OWASP SSRF Prevention Cheat Sheet; CWE-918).
        wait = self.fetch_refusals.take(client_id)
        if wait:
            raise RateLimited(
                f"too many of client {client_id}'s file_url fetches were refused on this "
                f"node (at most {self.fetch_refusals.rate.burst} in a row); send the document "
                f"as file, or retry file_url in {wait} s.",
                code=Code.FETCH_BUDGET_EXHAUSTED,
                retry_after=wait,
            )
        refused = False
        try:
            yield
        except FetchRefused as exc:
            refused = exc.code.status == FETCH_REFUSAL_STATUS
            raise
        finally:
            if not refused:
                self.fetch_refusals.give_back(client_id)


class RefusalEvents:
    """Which refused link openings the audit trail records (docs/design.md 6.3).

    A refused link is recorded only when its signature was genuine (it names a file),
    and then at most once per file, address and refusal code per ``window`` seconds, and
    at most ``per_file`` times per file per window: whoever holds an expired or revoked
    link (or learns the link secret) cannot fill that file's trail, however many
    addresses they send from. The trail still shows that it happened, and when.
    Remembered keys are bounded (``capacity``, oldest forgotten first).
    """

    def __init__(
        self,
        *,
        window: float = 60.0,
        per_file: int = 10,
        capacity: int = 10_000,
        clock: Monotonic = time.monotonic,
    ) -> None:
        self._window = window
        self._per_file = per_file
        self._capacity = capacity
        self._clock = clock
        # Insertion order is time order (the clock is monotonic): the expired ones lead.
        self._seen: OrderedDict[tuple[str, str | None, str], float] = OrderedDict()
        self._files: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, file_id: str, address: str | None, code: str) -> bool:
        """True when this refusal is to be recorded (and remembered as recorded)."""
        now = self._clock()
        with self._lock:
            self._forget_before(now - self._window)
            key = (file_id, address, code)
            if key in self._seen:
                return False
            times = self._files.get(file_id)
            if times is None:
                times = self._files[file_id] = []
            else:
                times[:] = [t for t in times if t > now - self._window]
                self._files.move_to_end(file_id)
            if len(times) >= self._per_file:
                return False
            times.append(now)
            self._seen[key] = now
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            while len(self._files) > self._capacity:
                self._files.popitem(last=False)
            return True

    def _forget_before(self, cutoff: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if at > cutoff:
                break
            del self._seen[key]
