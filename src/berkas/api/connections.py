"""The connection layer under the app: HTTP/1.1 framing errors, slow clients and the
node's connection cap, each answered in the one envelope (docs/design.md 2.5) or with a close.

uvicorn's httptools protocol answers a framing error in plain text, never times out a
connection that has not sent a complete request head, lets any byte cancel its keep-alive
timer for good, and buffers a header of any size (slowloris and friends: CWE-400).
``guarded_protocol`` returns its subclass that closes those holes; ``BodyIdleTimeout``
(ASGI middleware) bounds the gaps in a request body while the app reads it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from berkas.api.metrics import METRICS_STATE, Metrics
from berkas.core.codes import Code
from berkas.core.errors import RequestTimeout

# A request line and headers past this are refused (431, RFC 6585 section 5): httptools
# itself would buffer a header value of any length. A bearer token is about 1 KB.
MAX_HEAD_BYTES = 64 * 1024
# After answering on our own we stop reading requests but keep draining what the client
# still sends, for at most this long, before closing: closing with unread bytes makes the
# kernel send a reset that can destroy the answer in flight (RFC 9112 section 9.6).
LINGER_SECONDS = 2.0
# The scope key under which the protocol notes that it answered a request in flight
# itself (a malformed chunked body, say), so /metrics counts what the client was told.
ANSWERED = "berkas.answered"
# One "connection cap reached" warning per this many seconds, not one per refused socket.
_BUSY_LOG_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a client may take, and how many connections one node holds (config.py)."""

    header_timeout: float
    body_idle_timeout: float
    keepalive_timeout: float
    max_connections: int
    max_head_bytes: int = MAX_HEAD_BYTES


def guarded_protocol(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """The protocol class to hand ``uvicorn.Config(http=...)``, bound to ``limits``."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits})


def envelope_response(
    status: int, code: Code, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 response carrying the error envelope."""
    body = json.dumps(
        {"error": {"code": code.value, "message": message, "type": code.error_type.value}}
    ).encode()
    lines = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("connection", "close"),
        *headers,
    ]
    head = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in lines)
    return STATUS_LINE[status] + head + b"\r\n" + body


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, a head cap and a connection cap.

    One timer per connection, for what the server is waiting on:

    - ``head``: from the connection (or the first byte of a later request) to a complete
      request head; a partial head then gets 408, a silent connection is closed.
    - ``keepalive``: from a response's end to the next request's first byte; closed
      quietly (RFC 9112 section 9.5). Unlike uvicorn's own timer, bytes that start no
      request (an unread body's rest) do not stop it.

    No timer runs while a request is with the app; ``BodyIdleTimeout`` times its body.
    """

    limits: ClassVar[ConnectionLimits]
    _busy_logged: ClassVar[float] = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: str | None = None
        self._head_pending = True  # the next bytes belong to a request head
        self._head_bytes = 0
        self._message_begun = False
        self._heads = 0  # request heads completed on this connection
        self._answered = False
        # A framing error in bytes after a complete request still with the app (a body
        # shorter than its Content-Length said, a pipelined request gone wrong): answered
        # once that request has its own answer, which it is owed first (RFC 9112 9.3.2).
        self._deferred: tuple[int, Code, str] | None = None

    # Connection lifecycle
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            # Refused at once, before a byte is read, rather than when the head completes
            # (uvicorn's limit_concurrency): a slow head past the cap holds nothing.
            self.connections.discard(self)
            now = time.monotonic()
            if now - GuardedProtocol._busy_logged > _BUSY_LOG_SECONDS:
                GuardedProtocol._busy_logged = now
                self.logger.warning(
                    "connection cap reached (%d open); refusing new connections with 503",
                    self.limits.max_connections,
                )
            self._answer(
                503,
                Code.SERVER_BUSY,
                f"this node has {self.limits.max_connections} connections open, its "
                "most; retry shortly.",
                # RFC 9110 section 10.2.3: when to try again; a slot frees up quickly.
                (("retry-after", "1"),),
            )
            return
        self._arm("head", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._answered or self._deferred is not None:
            return  # lingering after our answer (or before it): read and drop
        self._unset_keepalive_if_required()
        heads = self._heads
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            self._framing_error(exc)
            return
        if self._head_pending and self._message_begun and heads == self._heads:
            # Only reads that complete no head count (the one completing it may carry
            # body bytes too), so a head is refused at most one read past the cap.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self.logger.info("request head over %d bytes answered 431", self._head_bytes)
                self._answer(
                    431,
                    Code.HEADERS_TOO_LARGE,
                    f"the request line and headers are over {self.limits.max_head_bytes // 1024}"
                    " KB, the most this server reads.",
                )

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._message_begun = True
        if self._waiting != "head":
            self._arm("head", self.limits.header_timeout)

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._head_bytes = 0
        self._heads += 1
        self._cancel()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_pending = True
        self._message_begun = False

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self._deferred is not None:
            self._answer(*self._deferred)
            return
        if pipelined or self._waiting == "head":
            return
        self._arm("keepalive", self.limits.keepalive_timeout)

    # Deadlines
    def _arm(self, waiting: str, seconds: float) -> None:
        self._cancel()
        self._waiting = waiting
        self._timer = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._waiting = None

    def _expired(self) -> None:
        waiting, self._timer = self._waiting, None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a request still with the app: that one's answer
            # comes first, and the head's clock starts over.
            self._arm("head", self.limits.header_timeout)
            return
        if waiting == "head" and self._message_begun:
            self.logger.info("request head not complete in time; answered 408")
            self._answer(
                408,
                Code.REQUEST_TIMEOUT,
                f"the request line and headers did not arrive within "
                f"{self.limits.header_timeout:g} s; the connection is closed.",
            )
            return
        # Nothing of a request was sent: an idle connection, closed without an answer.
        if waiting == "head":
            self._count("none", "header_timeout")
        self.transport.close()

    # Answers of our own
    def _framing_error(self, exc: Exception) -> None:
        cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
        detail = str(cause).strip().rstrip(".") or type(cause).__name__
        self.logger.info("malformed HTTP request answered 400: %s", detail)
        answer = (
            400,
            Code.MALFORMED_HTTP,
            f"the request does not parse as HTTP/1.1 ({detail}); check the request line, "
            "the headers, Content-Length and any chunked body.",
        )
        cycle = self.cycle
        if cycle is not None and not cycle.more_body and not cycle.response_complete:
            self._deferred = answer
            self._cancel()
            self.flow.pause_reading()
            return
        self._answer(*answer)

    def _answer(
        self, status: int, code: Code, message: str, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        """Answer with the envelope (unless a response has begun), then close."""
        self._answered = True
        self._count(str(status), code.value)
        self._cancel()
        cycle = self.cycle
        in_flight = cycle is not None and not cycle.response_complete
        if in_flight:
            # The app is still reading this request: it sees a disconnect (and removes
            # its spool); the client gets this answer, which /metrics then counts.
            cycle.scope[ANSWERED] = status  # type: ignore[literal-required]
            cycle.disconnected = True
            cycle.message_event.set()
        if in_flight and cycle.response_started:
            self.transport.close()  # mid-response: no room for another answer
            return
        self.transport.write(envelope_response(status, code, message, headers))
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _count(self, status: str, code: str) -> None:
        metrics = self.app_state.get(METRICS_STATE)
        if isinstance(metrics, Metrics):
            metrics.connection_answers.labels(status, code).inc()


class BodyIdleTimeout:
    """Pure ASGI middleware: a request body whose next chunk does not come within
    ``seconds`` raises ``RequestTimeout`` (408, ``Connection: close``) in the app.

    Timed only while the app waits for the body and until its last chunk, so a slow
    app or a long download is never cut; the multipart reader removes its spool.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        complete = False

        async def timed() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                # asyncio.timeout, not wait_for: no task per chunk on the upload path.
                async with asyncio.timeout(self.seconds):
                    message = await receive()
            except TimeoutError:
                complete = True
                raise RequestTimeout(
                    f"no part of the request body arrived for {self.seconds:g} s; the "
                    "connection is closed."
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, timed, send)


def answered_by_protocol(scope: Scope, default: int) -> int:
    """The status the connection layer already sent for this request, else ``default``."""
    status = scope.get(ANSWERED)
    return status if isinstance(status, int) else default
