"""api/threads.py: the cheaper trip to a request thread keeps what run_in_threadpool
guaranteed: the caller's context, no thread left running after a cancelled request, and
a stream's file closed when its response ends early."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import pytest

from berkas.api.threads import each_in_thread, in_thread

_REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="none")


def test_the_thread_sees_the_callers_context_and_returns_its_result() -> None:
    async def main() -> tuple[str, str]:
        _REQUEST.set("req-1")
        seen = await in_thread(_REQUEST.get)
        name = await in_thread(lambda: threading.current_thread().name)
        return seen, name

    seen, name = asyncio.run(main())
    assert seen == "req-1"
    assert name.startswith("berkas-request")


def test_an_exception_in_the_thread_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        asyncio.run(in_thread(fail))


def test_a_cancelled_caller_waits_for_its_thread_to_finish() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def write() -> None:
        started.set()
        release.wait(10)
        finished.append("written")

    async def main() -> list[str]:
        task = asyncio.create_task(in_thread(write))
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting for the write, not abandoned
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return list(finished)

    assert asyncio.run(main()) == ["written"]


def test_a_stream_cut_short_closes_its_source() -> None:
    closed: list[bool] = []

    def pieces() -> Iterator[bytes]:
        try:
            yield from (b"a", b"b", b"c")
        finally:
            closed.append(True)

    async def first_only() -> list[bytes]:
        stream = each_in_thread(pieces())
        got = [await anext(stream)]
        await stream.aclose()
        return got

    async def whole() -> list[bytes]:
        return [piece async for piece in each_in_thread(pieces())]

    assert asyncio.run(first_only()) == [b"a"]
    assert closed == [True]
    assert asyncio.run(whole()) == [b"a", b"b", b"c"]
    assert closed == [True, True]
