"""A node's chores: Request-Ids past retention are forgotten, expired keys pruned, client
secrets past their rotation grace deleted."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from berkas.adapters.db.memory import MemoryDatabase
from berkas.core.models import Client, EventKind, ReplayRecord
from berkas.services.housekeeping import Housekeeping
from tests.services.test_files import World
from tests.support import samples
from tests.support.fakes import FakeClock


class CountingKeys:
    def __init__(self) -> None:
        self.calls = 0

    def prune(self) -> list[str]:
        self.calls += 1
        return ["old-kid"] if self.calls == 1 else []


def test_each_round_forgets_only_records_past_retention() -> None:
    clock = FakeClock()
    db = MemoryDatabase()
    db.clients.add(Client("BRN-1", "SK-x", True, clock.now()))
    keys = CountingKeys()
    chores = Housekeeping(
        db.replays,
        keys,
        clock,
        clients=db.clients,
        retention=timedelta(hours=48),
        interval=timedelta(hours=1),
    )

    def record(request_id: str, age: timedelta) -> None:
        db.replays.begin(ReplayRecord("BRN-1", request_id, "f" * 64, 200, b"{}", clock.now() - age))

    record("old", timedelta(hours=49))
    record("young", timedelta(hours=47))

    assert chores.run_once() == 1
    assert keys.calls == 1
    clock.advance(timedelta(hours=2))  # "young" is now past retention too
    assert chores.run_once() == 1
    assert chores.run_once() == 0
    assert keys.calls == 3


def test_a_round_deletes_client_secrets_whose_grace_has_ended() -> None:
    clock = FakeClock()
    db = MemoryDatabase()
    db.clients.add(Client("BRN-1", "SK-old", True, clock.now()))
    db.clients.rotate_secret("BRN-1", "SK-new", clock.now(), clock.now() + timedelta(hours=2))
    chores = Housekeeping(
        db.replays,
        CountingKeys(),
        clock,
        clients=db.clients,
        retention=timedelta(hours=48),
        interval=timedelta(hours=1),
    )

    chores.run_once()
    still = db.clients.get("BRN-1")
    assert still is not None
    assert still.previous_secret_key == "SK-old"  # in its grace: kept

    clock.advance(timedelta(hours=2))
    chores.run_once()
    after = db.clients.get("BRN-1")
    assert after is not None
    assert (after.secret_key, after.previous_secret_key) == ("SK-new", None)


def _node(world: World, holder: str) -> Housekeeping:
    return Housekeeping(
        world.db.replays,
        CountingKeys(),
        world.clock,
        clients=world.db.clients,
        retention=timedelta(hours=48),
        interval=timedelta(minutes=10),
        files=world.files,
        tasks=world.db.tasks,
        holder=holder,
    )


def _expiring(world: World, file_id: str, after: timedelta, *, hold: bool = False) -> None:
    data = samples.png(seed=int(file_id[-1]))
    world.store(
        world.alice, file_id, data, retained_until=world.clock.now() + after, legal_hold=hold
    )


def test_only_the_lease_holder_expires_documents_and_a_dead_holder_is_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(tmp_path)
    first, second = _node(world, "node-a#1"), _node(world, "node-b#2")
    _expiring(world, "DCM-0001-1700000000001", timedelta(minutes=5))
    _expiring(world, "DCM-0001-1700000000002", timedelta(minutes=5), hold=True)
    _expiring(world, "DCM-0001-1700000000003", timedelta(minutes=30))

    caplog.set_level(logging.INFO, logger="berkas.services.housekeeping")
    first.run_once()  # takes the lease; nothing is due yet
    world.clock.advance(timedelta(minutes=6))
    second.run_once()  # not its lease: does nothing although one document is due
    assert world.db.files.get("DCM-0001-1700000000001") is not None
    first.run_once()  # the holder's round removes it; the held one stays

    assert world.db.files.get("DCM-0001-1700000000001") is None
    assert world.db.files.get("DCM-0001-1700000000002") is not None
    expired = [
        e
        for e in world.db.events.for_file("DCM-0001-1700000000001")
        if e.kind is EventKind.RETENTION_EXPIRED
    ]
    assert [e.detail for e in expired] == ["node-a#1"]
    assert "removed 1 document(s) whose retention has ended" in caplog.text

    # node-a stops renewing (it died); after two intervals node-b takes over.
    world.clock.advance(timedelta(minutes=30))
    second.run_once()
    assert world.db.files.get("DCM-0001-1700000000003") is None
    taken = world.db.events.for_file("DCM-0001-1700000000003")
    assert [e.detail for e in taken if e.kind is EventKind.RETENTION_EXPIRED] == ["node-b#2"]
