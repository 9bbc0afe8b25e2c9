"""The SDK's I/O-free core: calls are generators that yield actions and get outcomes back.

``BerkasClient`` and ``AsyncBerkasClient`` each run the same generators with their own
I/O (``httpx.Client`` vs ``httpx.AsyncClient``), so request building, retries and
response parsing exist once. This module owns the actions and the retry loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TypeAlias, TypeVar, cast

import httpx

from berkas.client.errors import (
    BerkasAPIError,
    ConflictError,
    ConnectionFailed,
    api_error,
    envelope,
)
from berkas.core.codes import Code

T = TypeVar("T")

# Statuses worth another try: the server (or a load balancer in front of it) says
# "not now" and did no work. 500 is not retried: it may recur on every try. berkas's 429
# comes before any work, with a Retry-After (RFC 6585 section 4) that ``delay`` honours.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Failures before any request byte left: retrying cannot do the work twice, so even a
# non-idempotent upload may retry them.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``request``; the outcome is the response (body read unless ``stream``) or
    the ``httpx.TransportError`` raised."""

    request: httpx.Request
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` before the next try; the outcome is None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Pump:
    """Feed a streamed response's body to ``write`` chunk by chunk, then close it; the
    outcome is None, or the ``httpx.TransportError`` that cut the body short."""

    response: httpx.Response
    write: Callable[[bytes], object]


@dataclass(frozen=True, slots=True)
class Lock:
    """Wait for the client's token lock and hold it; the outcome is None.

    One token fetch at a time across a client's concurrent calls (threads on
    ``BerkasClient``, tasks on ``AsyncBerkasClient``): the calls that waited find the
    token the first one fetched (``Session.token``). The runner releases a lock its flow
    still holds when the flow ends, however it ends.
    """


@dataclass(frozen=True, slots=True)
class Unlock:
    """Release the token lock taken with ``Lock``; the outcome is None."""


Action: TypeAlias = Send | Sleep | Pump | Lock | Unlock
Outcome: TypeAlias = httpx.Response | httpx.TransportError | None
Flow: TypeAlias = Generator[Action, Outcome, T]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard the SDK tries before it raises.

    ``retries`` extra tries for failures that are safe to repeat, waiting a random time
    up to ``backoff * 2**n`` seconds, at most ``max_backoff`` ("full jitter", so many
    clients retrying together spread out). A signed request's retry resends the very
    same headers (Request-Id, Request-Timestamp, Signature) while they are younger than
    ``reuse_signature_for`` seconds, and re-signs with the same Request-Id after that.
    """

    retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    reuse_signature_for: float = 60.0

    def delay(self, tries: int, retry_after: str | None = None) -> float | None:
        """Seconds to wait before try ``tries + 1``, or None when it is not worth it."""
        if tries >= self.retries:
            return None
        if retry_after is not None and retry_after.strip().isdigit():
            # RFC 9110 s10.2.3: the server says how long; past our cap, give up now
            # rather than fire early into the same refusal.
            wanted = float(retry_after.strip())
            return wanted if wanted <= self.max_backoff else None
        ceiling = min(self.max_backoff, self.backoff * 2**tries)
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


def send(
    request: httpx.Request, *, stream: bool = False
) -> Flow[httpx.Response | httpx.TransportError]:
    """Yield one ``Send`` and return its outcome, typed."""
    outcome = yield Send(request, stream)
    return cast(httpx.Response | httpx.TransportError, outcome)


def pump(
    response: httpx.Response, write: Callable[[bytes], object]
) -> Flow[httpx.TransportError | None]:
    """Yield one ``Pump`` and return its outcome, typed."""
    outcome = yield Pump(response, write)
    return cast(httpx.TransportError | None, outcome)


def read(response: httpx.Response) -> Flow[bytes]:
    """Return a streamed response's body (an error answer's envelope; small)."""
    body = bytearray()
    failure = yield from pump(response, body.extend)
    return bytes(body) if failure is None else b""


def attempt(
    build: Callable[[], httpx.Request],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    stream: bool = False,
) -> Flow[httpx.Response]:
    """Send the request ``build`` makes until it gets a 2xx, retrying what is safe.

    ``build`` runs once per try (a signed request decides there whether to re-sign).
    Idempotent requests retry transport failures and 429/502/503/504; others retry only
    failures before any byte was sent. A 409 whose body is not an error envelope, on a
    retry, is the server replaying our own first try's answer (same Request-Id,
    docs/design.md 2.1): the first try worked and only its answer was lost, so it is
    returned as such.
    Anything else non-2xx raises the matching ``BerkasAPIError``.
    """
    tries = 0
    while True:
        request = build()
        outcome = yield from send(request, stream=stream)
        retry_after: str | None = None
        cause: httpx.TransportError | None = None
        if isinstance(outcome, httpx.TransportError):
            cause = outcome
            failure: Exception = ConnectionFailed(
                f"{request.method} {request.url.copy_with(query=None)} failed: "
                f"{type(outcome).__name__}: {outcome}".rstrip(": ")
            )
            safe = idempotent or isinstance(outcome, _NOT_SENT)
        else:
            if outcome.is_success:
                return outcome
            body = (yield from read(outcome)) if stream else outcome.content
            if tries and not stream and outcome.status_code == 409 and envelope(body) is None:
                return outcome
            failure = api_error(
                outcome.status_code, body, request_id=request.headers.get("request-id")
            )
            safe = idempotent and _transient(failure, retried=tries > 0)
            retry_after = outcome.headers.get("retry-after")
        delay = policy.delay(tries, retry_after) if safe else None
        if delay is None:
            raise failure from cause
        tries += 1
        yield Sleep(delay)


def _transient(error: Exception, *, retried: bool) -> bool:
    if not isinstance(error, BerkasAPIError):
        return False
    if error.status in RETRY_STATUSES:
        return True
    # Our own earlier try still running on the server (its answer timed out): the
    # server will have the answer to replay soon.
    return retried and isinstance(error, ConflictError) and error.code == Code.REQUEST_IN_PROGRESS
