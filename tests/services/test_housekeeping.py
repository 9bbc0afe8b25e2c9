"""A node's chores: Request-Ids past retention are forgotten, expired keys pruned, client
secrets past their rotation grace deleted."""

from __future__ import annotations

from datetime import timedelta

from berkas.adapters.db.memory import MemoryDatabase
from berkas.core.models import Client, ReplayRecord
from berkas.services.housekeeping import Housekeeping
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
