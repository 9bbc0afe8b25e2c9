"""The overload limits on a fake clock: buckets, upload slots and the refused-fetch budget."""

from __future__ import annotations

import asyncio

import pytest

from berkas.core.codes import Code
from berkas.core.errors import FetchRefused, InvalidRequest, PayloadTooLarge, RateLimited
from berkas.services.limits import Buckets, ClientLimits, Rate, UploadSlots


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(clock: FakeClock, **rates: Rate | int) -> ClientLimits:
    settings: dict[str, Rate | int] = {
        "requests": Rate(0, 0),
        "uploads": Rate(0, 0),
        "concurrent_uploads": 0,
        "fetch_refusals": Rate(0, 0),
        **rates,
    }
    return ClientLimits(clock=clock, **settings)  # type: ignore[arg-type]


def test_a_burst_is_allowed_then_the_wait_is_until_the_next_token() -> None:
    clock = FakeClock()
    bucket = Buckets(Rate(per_second=0.5, burst=3), clock)
    assert [bucket.take("a") for _ in range(3)] == [0, 0, 0]
    # Empty: one token comes back after 1 / 0.5 = 2 s.
    assert bucket.take("a") == 2
    clock.now += 1.2
    assert bucket.take("a") == 1  # 0.8 s to go, rounded up
    clock.now += 0.8
    assert bucket.take("a") == 0
    assert bucket.take("a") == 2


def test_refusals_cost_nothing_and_the_refill_never_passes_the_burst() -> None:
    clock = FakeClock()
    bucket = Buckets(Rate(per_second=1, burst=2), clock)
    bucket.take("a")
    bucket.take("a")
    for _ in range(50):
        assert bucket.take("a") == 1
    clock.now += 1
    assert bucket.take("a") == 0
    clock.now += 3600  # an idle hour refills to the burst, not to 3600
    assert [bucket.take("a") for _ in range(3)] == [0, 0, 1]


def test_each_key_has_its_own_bucket() -> None:
    clock = FakeClock()
    bucket = Buckets(Rate(per_second=1, burst=1), clock)
    assert bucket.take("a") == 0
    assert bucket.take("a") == 1
    assert bucket.take("b") == 0


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = FakeClock()
    bucket = Buckets(Rate(per_second=1, burst=1), clock)
    bucket.take("a")
    clock.now -= 100
    assert bucket.take("a") == 1
    clock.now += 1
    assert bucket.take("a") == 0


def test_a_slow_rate_gives_a_long_whole_second_wait() -> None:
    clock = FakeClock()
    bucket = Buckets(Rate(per_second=60 / 3600, burst=1), clock)  # 60 an hour
    bucket.take("a")
    assert bucket.take("a") == 60


@pytest.mark.parametrize("rate", [Rate(0, 5), Rate(5, 0), Rate(0, 0)])
def test_zero_turns_a_bucket_off(rate: Rate) -> None:
    bucket = Buckets(rate, FakeClock())
    assert all(bucket.take("a") == 0 for _ in range(10_000))


def test_many_clients_do_not_grow_memory_without_bound() -> None:
    clock = FakeClock()
    bucket = Buckets(Rate(per_second=1, burst=1), clock)
    for n in range(25_000):
        bucket.take(f"client-{n}")
        clock.now += 0.001
    clock.now += 2  # every bucket has refilled: forgetting one changes nothing
    bucket.take("late")
    assert len(bucket._buckets) <= 20_001
    # A client still owing a token is remembered.
    bucket.take("late")
    for n in range(15_000):
        bucket.take(f"other-{n}")
    assert bucket.take("late") == 1


def test_the_request_limit_says_who_what_and_when() -> None:
    clock = FakeClock()
    limit = limits(clock, requests=Rate(per_second=2, burst=2))
    limit.admit_request("BRN-1")
    limit.admit_request("BRN-1")
    with pytest.raises(RateLimited) as refused:
        limit.admit_request("BRN-1")
    assert refused.value.code is Code.RATE_LIMITED
    assert refused.value.retry_after == 1
    assert "BRN-1" in refused.value.message
    assert "2 per second" in refused.value.message
    limit.admit_request("BRN-2")


def test_an_upload_takes_the_upload_rate_and_a_slot_released_however_it_ends() -> None:
    clock = FakeClock()
    limit = limits(clock, uploads=Rate(per_second=100, burst=100), concurrent_uploads=2)
    with limit.upload("a"), limit.upload("b"):
        with pytest.raises(RateLimited) as refused, limit.upload("c"):
            pass
        assert refused.value.code is Code.TOO_MANY_UPLOADS
        assert refused.value.retry_after == 1
    assert limit.slots.in_flight == 0
    with pytest.raises(InvalidRequest), limit.upload("a"):
        raise InvalidRequest("bad form")
    assert limit.slots.in_flight == 0


def test_a_cancelled_upload_releases_its_slot() -> None:
    slots = UploadSlots(1)
    started = asyncio.Event()

    async def receiving() -> None:
        with slots.hold():
            started.set()
            await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.create_task(receiving())
        await started.wait()
        assert slots.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert slots.in_flight == 0
    with slots.hold():
        assert slots.in_flight == 1


def test_the_upload_rate_is_refused_before_a_slot_is_taken() -> None:
    clock = FakeClock()
    limit = limits(clock, uploads=Rate(per_second=1, burst=1), concurrent_uploads=1)
    with limit.upload("a"):
        pass
    with pytest.raises(RateLimited) as refused, limit.upload("a"):
        pass
    assert refused.value.code is Code.UPLOAD_RATE_LIMITED
    assert limit.slots.in_flight == 0
    with limit.upload("b"):  # another client, and the slot is free
        pass


def _refuse(limit: ClientLimits, client: str, error: Exception) -> None:
    with pytest.raises(type(error)), limit.fetching(client):
        raise error


def test_refused_fetches_spend_the_budget_then_file_url_is_refused_before_fetching() -> None:
    clock = FakeClock()
    limit = limits(clock, fetch_refusals=Rate(per_second=1 / 60, burst=2))
    blocked = FetchRefused("loopback", code=Code.ADDRESS_NOT_ALLOWED)
    _refuse(limit, "a", blocked)
    _refuse(limit, "a", FetchRefused("no such host", code=Code.DNS_FAILED))
    fetched = False
    with pytest.raises(RateLimited) as refused, limit.fetching("a"):
        fetched = True
    assert not fetched
    assert refused.value.code is Code.FETCH_BUDGET_EXHAUSTED
    assert refused.value.retry_after == 60
    # Another client's budget is its own; after the wait one more fetch may go.
    with limit.fetching("b"):
        pass
    clock.now += 60
    with limit.fetching("a"):
        pass


def test_fetches_that_succeed_or_bring_a_refused_document_cost_nothing() -> None:
    clock = FakeClock()
    limit = limits(clock, fetch_refusals=Rate(per_second=1 / 3600, burst=1))
    for _ in range(5):
        with limit.fetching("a"):
            pass
    # A fetched body refused for its size or type keeps its own (413/415) code.
    _refuse(limit, "a", FetchRefused("too big", code=Code.FILE_TOO_LARGE))
    _refuse(limit, "a", FetchRefused("a GIF", code=Code.UNSUPPORTED_TYPE))
    _refuse(limit, "a", PayloadTooLarge("x"))
    _refuse(limit, "a", InvalidRequest("category missing"))
    with limit.fetching("a"):
        pass


def test_concurrent_probes_cannot_overdraw_the_budget() -> None:
    limit = limits(FakeClock(), fetch_refusals=Rate(per_second=1 / 3600, burst=1))
    # The one token is taken while the first fetch runs: a second one waits.
    with limit.fetching("a"), pytest.raises(RateLimited), limit.fetching("a"):
        pass
