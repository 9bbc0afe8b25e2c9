"""Node identity: a serving node leases its number; a live holder keeps others off it."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from berkas.adapters.db.memory import MemoryDatabase
from berkas.core.errors import Conflict
from berkas.services.nodes import LEASE_TTL, NodeLeases
from tests.support.fakes import FakeClock


def node(db: MemoryDatabase, clock: FakeClock, name: str) -> NodeLeases:
    return NodeLeases(db.leases, clock, holder=f"id-{name}", label=f"host {name} pid 1")


@pytest.fixture
def db() -> MemoryDatabase:
    return MemoryDatabase()


def test_a_configured_number_is_claimed(db: MemoryDatabase) -> None:
    clock = FakeClock()
    first = node(db, clock, "a")
    assert first.claim(4) == 4
    assert first.node_id == 4
    (held,) = db.leases.held(clock.now())
    assert (held.node_id, held.holder, held.expires_at) == (4, "id-a", clock.now() + LEASE_TTL)


def test_a_second_live_node_with_the_same_number_is_refused_naming_the_first(
    db: MemoryDatabase,
) -> None:
    clock = FakeClock()
    node(db, clock, "a").claim(1)

    with pytest.raises(Conflict) as refused:
        node(db, clock, "b").claim(1)

    assert refused.value.code == "node_id_taken"
    assert "node id 1 is held by another live node (host a pid 1)" in refused.value.message
    assert "BERKAS_NODE_ID" in refused.value.message


def test_a_crashed_nodes_number_is_free_again_within_a_minute(db: MemoryDatabase) -> None:
    clock = FakeClock()
    node(db, clock, "a").claim(1)  # then it dies: no heartbeat, no release
    clock.advance(LEASE_TTL + timedelta(seconds=1))
    assert LEASE_TTL + timedelta(seconds=1) <= timedelta(seconds=60)

    assert node(db, clock, "b").claim(1) == 1


def test_heartbeats_keep_the_number_for_as_long_as_the_node_serves(db: MemoryDatabase) -> None:
    clock = FakeClock()
    alive = node(db, clock, "a")
    alive.claim(1)
    for _ in range(10):  # five minutes of heartbeats at the interval
        clock.advance(alive.interval)
        alive.heartbeat()

    with pytest.raises(Conflict):
        node(db, clock, "b").claim(1)


def test_auto_takes_the_lowest_free_number(db: MemoryDatabase) -> None:
    clock = FakeClock()
    node(db, clock, "a").claim(0)
    node(db, clock, "b").claim(2)

    assert node(db, clock, "c").claim(None) == 1
    assert node(db, clock, "d").claim(None) == 3


def test_a_clean_shutdown_frees_the_number_at_once(db: MemoryDatabase) -> None:
    clock = FakeClock()
    leaving = node(db, clock, "a")
    leaving.claim(1)
    leaving.release()

    assert node(db, clock, "b").claim(1) == 1


def test_a_node_that_lost_its_number_says_so(
    db: MemoryDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    stalled = node(db, clock, "a")
    stalled.claim(1)
    clock.advance(LEASE_TTL * 2)  # paused past its lease; another node took the number
    node(db, clock, "b").claim(1)

    with caplog.at_level(logging.CRITICAL, logger="berkas.services.nodes"):
        stalled.heartbeat()

    assert "node id 1 was taken over by host b pid 1" in caplog.text
