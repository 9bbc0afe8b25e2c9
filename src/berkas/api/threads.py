"""Blocking work of the small, hot requests off the event loop, at a third of the cost of
``starlette.concurrency.run_in_threadpool``.

anyio's ``to_thread.run_sync`` (what Starlette and FastAPI use) takes a capacity-limiter
token, opens a cancel scope and wakes its worker through its own queue: about 50 µs of
CPU per trip on uvloop, measured here, against about 16 µs for the event loop's own
``run_in_executor`` (docs/design.md 5.5). A token, a requirements answer or a metadata
read takes one or two trips and costs about a millisecond in all, so the trip was a
twentieth of it. Uploads keep anyio: their services are written against it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# As many as anyio's default limiter lends (40): the SQLite group commit sizes its
# batches for that many request threads (adapters/db/writes.py MAX_BATCH).
THREADS = 40
_POOL = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="berkas-request")


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on a request thread, with this task's context variables
    (the access log's request context among them), as ``run_in_threadpool`` runs it.

    A caller cancelled meanwhile (its client went away) still waits for the thread to
    finish before the cancellation goes on, as anyio's ``run_sync`` does by default: no
    write it started is left running unobserved after the request ended.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    future = loop.run_in_executor(_POOL, call)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


async def each_in_thread(chunks: Iterator[bytes]) -> AsyncGenerator[bytes, None]:
    """``chunks`` pulled one at a time on a request thread (a decrypting download reads
    and opens each piece there), as Starlette's ``iterate_in_threadpool`` pulls a
    ``StreamingResponse``'s plain iterator, one cheaper trip per piece; closed when the
    response ends, finished or cut, so its file is closed at once."""
    try:
        while (chunk := await in_thread(next, chunks, None)) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
