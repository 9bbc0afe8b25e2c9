"""BodyIdleTimeout in-process: a stalled body raises RequestTimeout, a finished one is
never timed (the server-side view is tests/e2e/test_connection_layer.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.types import Message, Receive, Scope, Send

from berkas.api.connections import BodyIdleTimeout, envelope_response
from berkas.core.codes import Code
from berkas.core.errors import RequestTimeout

SCOPE: Scope = {"type": "http", "method": "POST", "path": "/", "headers": []}


def feeding(*messages: Message) -> Receive:
    """A receive that hands out ``messages``, then waits for ever (a silent client)."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def reader(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if not message.get("more_body", False):
            return


async def nothing(message: Message) -> None:
    return None


def test_a_body_that_stops_coming_raises_request_timeout() -> None:
    app = BodyIdleTimeout(reader, seconds=0.05)
    receive = feeding({"type": "http.request", "body": b"a", "more_body": True})
    with pytest.raises(RequestTimeout) as raised:
        asyncio.run(app(SCOPE, receive, nothing))
    assert raised.value.code is Code.REQUEST_TIMEOUT
    assert "0.05 s" in raised.value.message


def test_after_the_last_chunk_receive_is_not_timed() -> None:
    # What a streaming response does: wait for the client's disconnect, however long.
    async def listener(scope: Scope, receive: Receive, send: Send) -> None:
        await reader(scope, receive, send)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await receive()

    app = BodyIdleTimeout(listener, seconds=0.05)
    asyncio.run(
        app(SCOPE, feeding({"type": "http.request", "body": b"", "more_body": False}), nothing)
    )


def test_the_protocol_answer_is_a_closing_envelope() -> None:
    raw = envelope_response(503, Code.SERVER_BUSY, "busy.", (("retry-after", "1"),))
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert {"connection: close", "retry-after: 1", "content-type: application/json"} <= set(lines)
    assert f"content-length: {len(body)}" in lines
    assert json.loads(body) == {
        "error": {"code": "server_busy", "message": "busy.", "type": "api_error"}
    }


@pytest.mark.parametrize(
    "name", ["_unset_keepalive_if_required", "_should_upgrade", "_unsupported_upgrade_warning"]
)
def test_the_private_uvicorn_methods_the_guard_calls_still_exist(name: str) -> None:
    # GuardedProtocol subclasses uvicorn's httptools protocol and calls these private
    # methods; pyproject.toml bounds uvicorn below its next minor, and this fails first
    # if a release renames or drops one.
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415

    assert callable(getattr(HttpToolsProtocol, name, None)), name
