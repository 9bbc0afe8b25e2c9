"""Clients cached in memory (docs/design.md 2.1): stale for at most the bound across
processes, never after a change made through this process, bounded in size."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta

import pytest

from berkas.adapters.db.memory import MemoryDatabase, MemoryKeyStore
from berkas.adapters.keys import KeyRing, StoredKey, thumbprint
from berkas.core import signing
from berkas.core.errors import AuthenticationFailed
from berkas.core.models import Client
from berkas.services.client_cache import CLIENT_CACHE_SECONDS, CachedClients
from berkas.services.clients import ClientService
from berkas.services.signed import RequestVerifier, SignedRequest
from berkas.services.tokens import TokenService
from tests.support.fakes import FakeClock
from tests.support.legacy import new_rsa_key, pem_of

TOKEN_PATH = "/adv-core-api/partner/v1.0/token"
BODY = b'{"grant_type":"client_credentials","valid_time":"5"}'


class CountingClients:
    """The memory repository, counting the reads that reach it."""

    def __init__(self, database: MemoryDatabase) -> None:
        self.inner = database.clients
        self.reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get(self, client_id: str) -> Client | None:
        self.reads += 1
        return self.inner.get(client_id)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stored(clock: FakeClock) -> CountingClients:
    counting = CountingClients(MemoryDatabase())
    counting.inner.add(Client("BRN-0001-1", "SK-one-secret", True, clock.now()))
    return counting


@pytest.fixture
def cache(stored: CountingClients, clock: FakeClock) -> CachedClients:
    return CachedClients(stored, clock)  # type: ignore[arg-type]


def request(clock: FakeClock, secret: str, request_id: str) -> SignedRequest:
    stamp = signing.format_timestamp(clock.now())
    return SignedRequest(
        client_id="BRN-0001-1",
        request_id=request_id,
        timestamp=stamp,
        signature=signing.sign(
            secret,
            client_id="BRN-0001-1",
            request_id=request_id,
            timestamp=stamp,
            target=TOKEN_PATH,
            digest=signing.digest(BODY),
        ),
        method="POST",
        path=TOKEN_PATH,
        query="",
        body=BODY,
    )


def refused(verifier: RequestVerifier, signed: SignedRequest) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.authenticate(signed)
    return caught.value.code


def test_a_client_is_read_once_per_bound(
    cache: CachedClients, stored: CountingClients, clock: FakeClock
) -> None:
    for _ in range(5):
        assert cache.get("BRN-0001-1") is not None
    assert stored.reads == 1
    clock.advance(timedelta(seconds=CLIENT_CACHE_SECONDS - 1))
    assert cache.get("BRN-0001-1") is not None
    assert stored.reads == 1
    clock.advance(timedelta(seconds=1))
    assert cache.get("BRN-0001-1") is not None
    assert stored.reads == 2


def test_another_process_s_disable_is_refused_once_the_bound_has_passed(
    cache: CachedClients, stored: CountingClients, clock: FakeClock
) -> None:
    verifier = RequestVerifier(cache, MemoryDatabase().replays, clock, window=timedelta(minutes=5))
    assert verifier.authenticate(request(clock, "SK-one-secret", "a")).enabled
    stored.inner.set_enabled("BRN-0001-1", False)  # `berkas clients disable`: the table only

    clock.advance(timedelta(seconds=CLIENT_CACHE_SECONDS))
    assert refused(verifier, request(clock, "SK-one-secret", "b")) == "client_disabled"


def ring(clock: FakeClock) -> KeyRing:
    store = MemoryKeyStore()
    key = new_rsa_key()
    store.add(
        StoredKey(thumbprint(key.public_key()), clock.now(), None),
        pem_of(key),
        replace_current=False,
    )
    return KeyRing.open(store, clock=clock, max_token_lifetime=timedelta(minutes=60))


def test_a_disable_through_this_process_is_refused_at_once(
    cache: CachedClients, clock: FakeClock
) -> None:
    verifier = RequestVerifier(cache, MemoryDatabase().replays, clock, window=timedelta(minutes=5))
    tokens = TokenService(ring(clock), cache, clock)
    token = tokens.issue("BRN-0001-1", "5").token
    assert tokens.verify(token).client_id == "BRN-0001-1"

    ClientService(cache, clock).set_enabled("BRN-0001-1", False)

    assert refused(verifier, request(clock, "SK-one-secret", "a")) == "client_disabled"
    with pytest.raises(AuthenticationFailed) as caught:
        tokens.verify(token)
    assert caught.value.code == "client_disabled"


def test_a_rotation_through_this_process_takes_effect_at_once_and_the_old_secret_keeps_its_grace(
    cache: CachedClients, clock: FakeClock
) -> None:
    verifier = RequestVerifier(cache, MemoryDatabase().replays, clock, window=timedelta(minutes=5))
    assert verifier.authenticate(request(clock, "SK-one-secret", "a")).enabled

    rotation = ClientService(cache, clock).rotate_secret("BRN-0001-1", timedelta(hours=1))
    new = rotation.client.secret_key

    assert verifier.authenticate(request(clock, new, "b")).secret_key == new
    assert verifier.authenticate(request(clock, "SK-one-secret", "c")).secret_key == new
    clock.advance(timedelta(hours=1))  # the grace is over; the entry read at its start
    assert refused(verifier, request(clock, "SK-one-secret", "d")) == "signature_invalid"


def test_a_cached_previous_secret_stops_verifying_when_its_grace_ends(
    stored: CountingClients, clock: FakeClock
) -> None:
    # A grace ending inside one entry's lifetime: the entry is not trusted past it.
    stored.inner.rotate_secret(
        "BRN-0001-1", "SK-new", clock.now(), clock.now() + timedelta(seconds=3)
    )
    cache = CachedClients(stored, clock, ttl=60)  # type: ignore[arg-type]
    verifier = RequestVerifier(cache, MemoryDatabase().replays, clock, window=timedelta(minutes=5))
    assert verifier.authenticate(request(clock, "SK-one-secret", "a")).enabled
    clock.advance(timedelta(seconds=3))
    assert refused(verifier, request(clock, "SK-one-secret", "b")) == "signature_invalid"


def test_unknown_ids_are_not_cached(cache: CachedClients, stored: CountingClients) -> None:
    assert cache.get("BRN-9999-9") is None
    assert cache.get("BRN-9999-9") is None
    assert stored.reads == 2
    assert len(cache._entries) == 0


def test_entries_are_bounded_least_recently_used_first(clock: FakeClock) -> None:
    database = MemoryDatabase()
    for n in range(5):
        database.clients.add(Client(f"BRN-000{n}", f"SK-{n}", True, clock.now()))
    counting = CountingClients(database)
    cache = CachedClients(counting, clock, max_entries=3)  # type: ignore[arg-type]
    for n in range(3):
        cache.get(f"BRN-000{n}")
    cache.get("BRN-0000")  # used again: now the most recent
    cache.get("BRN-0003")  # evicts BRN-0001, the least recently used
    cache.get("BRN-0004")  # evicts BRN-0002
    assert list(cache._entries) == ["BRN-0000", "BRN-0003", "BRN-0004"]
    reads = counting.reads
    cache.get("BRN-0000")
    assert counting.reads == reads
    cache.get("BRN-0001")
    assert counting.reads == reads + 1


def test_a_read_racing_a_change_does_not_store_the_row_it_read(clock: FakeClock) -> None:
    database = MemoryDatabase()
    database.clients.add(Client("BRN-0001-1", "SK-one-secret", True, clock.now()))
    reading, changed = threading.Event(), threading.Event()

    class SlowClients(CountingClients):
        def get(self, client_id: str) -> Client | None:
            row = super().get(client_id)
            reading.set()
            changed.wait(5)
            return row  # read before the disable below committed

    slow = SlowClients(database)
    cache = CachedClients(slow, clock)  # type: ignore[arg-type]
    reader = threading.Thread(target=cache.get, args=("BRN-0001-1",))
    reader.start()
    assert reading.wait(5)
    cache.set_enabled("BRN-0001-1", False)
    changed.set()
    reader.join(5)

    client = cache.get("BRN-0001-1")
    assert client is not None
    assert not client.enabled


def test_many_threads_share_it(cache: CachedClients, stored: CountingClients) -> None:
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(200):
                client = cache.get("BRN-0001-1")
                assert client is not None
                cache.forget("BRN-0001-1")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_secret_rotated_by_another_process_verifies_at_once(
    cache: CachedClients, stored: CountingClients, clock: FakeClock
) -> None:
    verifier = RequestVerifier(cache, MemoryDatabase().replays, clock, window=timedelta(minutes=5))
    assert verifier.authenticate(request(clock, "SK-one-secret", "a")).enabled
    grace = clock.now() + timedelta(hours=1)
    stored.inner.rotate_secret("BRN-0001-1", "SK-rotated", clock.now(), grace)  # the CLI

    assert verifier.authenticate(request(clock, "SK-rotated", "b")).secret_key == "SK-rotated"
    assert verifier.authenticate(request(clock, "SK-one-secret", "c")).secret_key == "SK-rotated"
    assert refused(verifier, request(clock, "SK-wrong", "d")) == "signature_invalid"


def test_a_token_minted_elsewhere_after_a_rotation_is_accepted_at_once(
    cache: CachedClients, stored: CountingClients, clock: FakeClock
) -> None:
    keys = ring(clock)
    here = TokenService(keys, cache, clock)
    assert here.verify(here.issue("BRN-0001-1", "5").token).token_generation == 0
    stored.inner.rotate_secret("BRN-0001-1", "SK-rotated", clock.now(), None)  # the CLI
    elsewhere = TokenService(keys, stored.inner, clock)  # another node, no cache
    token = elsewhere.issue("BRN-0001-1", "5").token

    assert here.verify(token).token_generation == 1


def test_a_client_enabled_by_another_process_is_accepted_at_once(
    cache: CachedClients, stored: CountingClients, clock: FakeClock
) -> None:
    verifier = RequestVerifier(cache, MemoryDatabase().replays, clock, window=timedelta(minutes=5))
    stored.inner.set_enabled("BRN-0001-1", False)
    assert refused(verifier, request(clock, "SK-one-secret", "a")) == "client_disabled"
    stored.inner.set_enabled("BRN-0001-1", True)  # `berkas clients enable`: the table only

    assert verifier.authenticate(request(clock, "SK-one-secret", "b")).enabled


def test_a_bad_signature_costs_one_read_whether_the_client_is_remembered_or_unknown(
    cache: CachedClients, stored: CountingClients, clock: FakeClock
) -> None:
    verifier = RequestVerifier(cache, MemoryDatabase().replays, clock, window=timedelta(minutes=5))
    assert verifier.authenticate(request(clock, "SK-one-secret", "a")).enabled  # remembered
    reads = stored.reads
    assert refused(verifier, request(clock, "SK-wrong", "b")) == "signature_invalid"
    assert stored.reads == reads + 1
    unknown = dataclasses.replace(request(clock, "SK-wrong", "c"), client_id="BRN-9999-9")
    assert refused(verifier, unknown) == "signature_invalid"
    assert stored.reads == reads + 2


class Marker:
    """A ChangeSignal shared by two caches, as the data dir's file is by two processes."""

    def __init__(self) -> None:
        self.value = 0

    def version(self) -> int:
        return self.value

    def notify(self) -> None:
        self.value += 1


def test_a_change_made_by_another_process_on_the_data_dir_is_seen_at_once() -> None:
    # The serving node's cache and the CLI's share only the database and the marker.
    database = MemoryDatabase()
    database.clients.add(Client("BRN-0001-1", "SK-one", True, datetime.now(UTC)))
    marker = Marker()
    serving = CachedClients(database.clients, lambda: 0.0, changes=marker)
    cli = CachedClients(database.clients, lambda: 0.0, changes=marker)
    assert serving.get("BRN-0001-1").enabled  # type: ignore[union-attr]

    cli.set_enabled("BRN-0001-1", False)

    # The clock has not moved at all: only the marker tells the serving cache.
    assert serving.get("BRN-0001-1").enabled is False  # type: ignore[union-attr]


def test_without_the_marker_moving_a_remembered_client_is_not_read_again() -> None:
    database = MemoryDatabase()
    database.clients.add(Client("BRN-0001-1", "SK-one", True, datetime.now(UTC)))
    serving = CachedClients(database.clients, lambda: 0.0, changes=Marker())
    assert serving.remembered("BRN-0001-1")[1] is False
    database.clients.set_enabled("BRN-0001-1", False)  # behind every cache's back

    client, from_memory = serving.remembered("BRN-0001-1")

    # Within the bound and with no marker move, the node acts on what it read.
    assert from_memory
    assert client is not None
    assert client.enabled
