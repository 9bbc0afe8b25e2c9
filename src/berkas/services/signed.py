"""Signed partner requests (docs/design.md 2.1): who is calling, is it fresh, and was it
seen before."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from berkas.core import signing
from berkas.core.codes import Code
from berkas.core.errors import AuthenticationFailed, Conflict, InvalidRequest, Replayed
from berkas.core.models import Client, ReplayRecord
from berkas.core.ports import (
    CachedClientRepository,
    ClientRepository,
    Clock,
    ReplayRepository,
)
from berkas.services.idempotency import MAX_KEY, reserve

MAX_REQUEST_ID = MAX_KEY
# Stands in for the secret of a Client-Id that does not exist; the result is discarded.
_NO_SUCH_CLIENT = "SK-berkas-no-such-client"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the HTTP layer saw: the four DOKU headers and the exact request bytes."""

    client_id: str | None
    request_id: str | None
    timestamp: str | None
    signature: str | None
    method: str
    path: str
    query: str
    body: bytes | None

    def fingerprint(self) -> str:
        """Identifies "the same request" for the Request-Id replay rule."""
        digest = signing.digest(self.body or b"")
        text = f"{self.method}\n{self.path}\n{self.query}\n{digest}"
        return hashlib.sha256(text.encode()).hexdigest()


class RequestVerifier:
    """Authenticates HMAC-signed requests and applies DOKU's Request-Id replay rule."""

    def __init__(
        self,
        clients: ClientRepository,
        replays: ReplayRepository,
        clock: Clock,
        *,
        window: timedelta,
        stale_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self._clients = clients
        self._replays = replays
        self._clock = clock
        self._window = window
        self._stale_after = stale_after

    def authenticate(self, request: SignedRequest) -> Client:
        """Return the calling client, or raise ``AuthenticationFailed``/``InvalidRequest``."""
        client_id = _required(request.client_id, "Client-Id")
        request_id = _required(request.request_id, "Request-Id")
        raw_timestamp = _required(request.timestamp, "Request-Timestamp")
        signature = _required(request.signature, "Signature")
        if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
            raise InvalidRequest(
                f"Request-Id must be 1 to {MAX_REQUEST_ID} printable characters.",
                code=Code.INVALID_REQUEST_ID,
            )
        timestamp = signing.parse_timestamp(raw_timestamp)
        now = self._clock.now()
        if not signing.timestamp_within(timestamp, now, self._window):
            seconds = int(self._window.total_seconds())
            raise AuthenticationFailed(
                f"Request-Timestamp {raw_timestamp} is more than {seconds} seconds away from "
                f"the server time {signing.format_timestamp(now)}; check the client clock.",
                code=Code.TIMESTAMP_OUT_OF_WINDOW,
            )
        client, remembered = self._client(client_id)
        digest = signing.digest(request.body) if request.body is not None else None
        # DOKU does not say whether Request-Target includes the query string; clients
        # differ, so the path alone and path?query are both accepted (docs/design.md 2.1).
        targets = [request.path]
        if request.query:
            targets.append(f"{request.path}?{request.query}")

        # An unknown Client-Id is answered exactly like a bad signature, after the same
        # HMAC work, so an unsigned caller cannot learn which Client-Ids exist.
        def matches(secret: str) -> bool:
            return signing.signature_matches(
                secret,
                signature,
                client_id=client_id,
                request_id=request_id,
                timestamp=raw_timestamp,
                targets=targets,
                digest=digest,
            )

        signed_right = matches(client.secret_key if client is not None else _NO_SUCH_CLIENT)
        if not signed_right:
            # The secret a rotation replaced verifies until its grace ends (berkas clients
            # rotate-secret), so a partner switches without one failed request. Tried only
            # on a mismatch, so a correct signature costs one HMAC as before. Every
            # mismatch costs the same second HMAC (a stand-in secret when there is no
            # previous one): timing tells no caller which clients are in a grace.
            previous = client.previous_secret_at(now) if client is not None else None
            signed_right = matches(previous if previous is not None else _NO_SUCH_CLIENT)
            signed_right = signed_right and previous is not None
        if not signed_right and remembered:
            # The remembered row may predate a `berkas clients rotate-secret` run
            # elsewhere: a partner switching at once to the new secret must not fail for
            # up to the cache bound (docs/design.md 2.1). A mismatch on a remembered
            # client pays the one read an unknown or unremembered Client-Id has just
            # paid, and HMACs again only when the row has changed, so timing still tells
            # nothing.
            current, remembered = self._fresh(client_id), False
            if current != client:
                client = current
                signed_right = client is not None and self._signed_by(client, matches, now)
        if client is None or not signed_right:
            raise AuthenticationFailed(
                "Client-Id is unknown or Signature does not match the request; sign "
                "Client-Id, Request-Id, Request-Timestamp, Request-Target and Digest as "
                "DOKU specifies.",
                code=Code.SIGNATURE_INVALID,
            )
        # Checked after the signature so a forger cannot probe which clients are disabled.
        if not client.enabled and remembered:
            # Enabled again elsewhere since it was remembered? (docs/design.md 2.1)
            client = self._fresh(client_id) or client
        if not client.enabled:
            raise AuthenticationFailed(
                f"Client-Id {client_id!r} is disabled.", code=Code.CLIENT_DISABLED
            )
        return client

    def _client(self, client_id: str) -> tuple[Client | None, bool]:
        if isinstance(self._clients, CachedClientRepository):
            return self._clients.remembered(client_id)
        return self._clients.get(client_id), False

    def _fresh(self, client_id: str) -> Client | None:
        assert isinstance(self._clients, CachedClientRepository)  # only after remembered
        return self._clients.fresh(client_id)

    @staticmethod
    def _signed_by(client: Client, matches: Callable[[str], bool], now: datetime) -> bool:
        if matches(client.secret_key):
            return True
        previous = client.previous_secret_at(now)
        return previous is not None and matches(previous)

    def record(self, client: Client, request: SignedRequest, status: int, body: bytes) -> None:
        """For work whose only effect is its answer (a token, a requirements lookup):
        store that answer under the Request-Id after the work, in one write.

        Raises ``Replayed`` (the first answer) or ``Conflict`` (another request under
        that Request-Id, or one still running) when the Request-Id was used first: of two
        identical requests racing, one is answered and the other hears the first answer.
        A 5xx is not remembered (a retry runs).
        """
        if status >= 500:
            return
        answered = ReplayRecord(
            client_id=client.client_id,
            request_id=_required(request.request_id, "Request-Id"),
            fingerprint=request.fingerprint(),
            status=status,
            body=body,
            created_at=self._clock.now(),
        )
        existing = reserve(self._replays, answered, self._stale_after)
        if existing is not None:
            _refuse(existing, answered)


def _refuse(existing: ReplayRecord, record: ReplayRecord) -> NoReturn:
    """What a request whose Request-Id was used first hears: the first answer, or why not."""
    request_id = record.request_id
    if existing.fingerprint != record.fingerprint:
        raise Conflict(
            f"Request-Id {request_id!r} was already used for a different request; "
            "use a new Request-Id for each new request.",
            code=Code.REQUEST_ID_REUSED,
        )
    if existing.body is None:
        raise Conflict(
            f"A request with Request-Id {request_id!r} is still being processed.",
            code=Code.REQUEST_IN_PROGRESS,
        )
    raise Replayed(existing.body)


def _required(value: str | None, header: str) -> str:
    if value is None or value.strip() == "":
        raise AuthenticationFailed(
            f"The {header} header is required on signed requests.", code=Code.HEADER_MISSING
        )
    return value.strip()
