"""What every SDK call shares: the httpx client, the retry policy and clock, DOKU-signed
requests (docs/design.md 2.1), and the bearer token with its cache (docs/design.md 2.2)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from berkas import __version__
from berkas.client import models
from berkas.client.errors import AuthenticationError, ServerError
from berkas.client.flow import Flow, Lock, RetryPolicy, Unlock, attempt
from berkas.client.models import Token
from berkas.client.token_file import TokenFile
from berkas.core.signing import signed_headers
from berkas.core.wire import API_PREFIX

PREFIX = API_PREFIX
USER_AGENT = f"berkas-client/{__version__}"
# Refresh a cached token this long before it expires (or after 80% of a short life), so
# a request never leaves with a token that expires in flight.
REFRESH_MARGIN = 60.0

Part = tuple[str | None, Any, str | None]


@dataclass(frozen=True, slots=True)
class _Cached:
    token: Token
    minutes: int | None
    refresh_at: float


class Session:
    """The partner's credentials and token cache over one httpx client, for both clients."""

    def __init__(
        self,
        http: httpx.Client | httpx.AsyncClient,
        client_id: str,
        secret_key: str,
        *,
        token_minutes: int | None,
        retry: RetryPolicy,
        clock: Callable[[], float],
        token_file: TokenFile | None = None,
    ) -> None:
        self._http = http
        self._client_id = client_id
        self._secret_key = secret_key
        self._token_minutes = token_minutes
        self.retry = retry
        self._clock = clock
        self._cached: _Cached | None = None
        # Read once, on the first call: a token the server refuses afterwards is
        # forgotten for good, never read back from the file.
        self._token_file = token_file
        self._file_unread = token_file is not None
        self._fetches = 0  # tokens this process has fetched

    def token(self, valid_time: int | None) -> Flow[Token]:
        """A bearer token (POST /token), reused from the cache while fresh.

        Fetched under the client's token lock and looked up again once it is held, so
        concurrent calls on a fresh client (three uploads started together) share one
        fetch instead of signing one token each.
        """
        minutes = valid_time if valid_time is not None else self._token_minutes
        fresh = self._fresh(minutes)
        if fresh is not None:
            return fresh
        yield Lock()
        try:
            fresh = self._fresh(minutes)
            if fresh is None:
                fresh = yield from self._fetch(minutes)
        except Exception:
            # Not on GeneratorExit (a BaseException): a flow being closed cannot yield,
            # and its runner releases the lock itself.
            yield Unlock()
            raise
        yield Unlock()
        return fresh

    def forget(self, token: Token) -> None:
        """Drop ``token`` from the cache (the server refused it), unless a concurrent call
        has already replaced it with a newer one."""
        cached = self._cached
        if cached is not None and cached.token is token:
            self._cached = None

    def _fresh(self, minutes: int | None) -> Token | None:
        if self._file_unread and self._token_file is not None:
            self._file_unread = False
            found = self._token_file.load(minutes, self._clock())
            if found is not None:
                self._cached = _Cached(found[0], minutes, found[1])
        cached = self._cached
        if cached is not None and cached.minutes == minutes and self._clock() < cached.refresh_at:
            return cached.token
        return None

    def _fetch(self, minutes: int | None) -> Flow[Token]:
        # DOKU's body: valid_time is a string of minutes (docs/design.md 2.2).
        payload: dict[str, str] = {"grant_type": "client_credentials"}
        if minutes is not None:
            payload["valid_time"] = str(minutes)
        body = json.dumps(payload, separators=(",", ":")).encode()
        # Anchor the cache on our own clock, taken before asking: exp - iat says how long
        # the token lives, and using that span rather than exp itself makes the cache
        # immune to skew between our clock and the server's.
        asked_at = self._clock()
        response = yield from self.signed("POST", f"{PREFIX}/token", body=body)
        token = models.parse_token(response_json(response))
        self._fetches += 1
        self._cached = _Cached(token, minutes, asked_at + _fresh_for(token))
        if self._token_file is not None and self._cached.refresh_at > asked_at:
            self._token_file.save(token, minutes, self._cached.refresh_at)
        return token

    # -- request building ------------------------------------------------------------

    def build(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        files: list[tuple[str, Part]] | None = None,
    ) -> httpx.Request:
        """A request on the client's base URL (no I/O)."""
        return self._http.build_request(
            method, url, headers=headers, params=params, content=content, files=files
        )

    def signed(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Flow[httpx.Response]:
        """Send a DOKU-signed request (docs/design.md 2.1), retrying under one Request-Id.

        Every try carries the same Request-Id, so the server's replay rule makes a
        repeat safe: work done once is answered again, never done twice. The same
        signed headers are resent verbatim while younger than the policy's
        ``reuse_signature_for`` (a retry is then byte-identical to a duplicate the
        network might have made); past that the request is re-signed with a fresh
        Request-Timestamp, since an old one would fall outside the server's window
        (berkas: ±5 minutes by default). The replay fingerprint covers method, path,
        query and body, not the timestamp, so the re-signed try is still "the same
        request".
        """
        request_id = str(uuid.uuid4())
        signed: dict[str, str] = {}
        signed_at = 0.0

        def build() -> httpx.Request:
            nonlocal signed, signed_at
            request = self.build(method, path, params=params, content=body)
            now = self._clock()
            if not signed or now - signed_at > self.retry.reuse_signature_for:
                signed = signed_headers(
                    client_id=self._client_id,
                    secret_key=self._secret_key,
                    # The path alone: berkas accepts it with or without the query, and
                    # DOKU's own examples sign the path (docs/design.md 2.1).
                    target=request.url.path,
                    body=body,
                    request_id=request_id,
                    timestamp=datetime.fromtimestamp(now, UTC),
                )
                signed_at = now
            request.headers.update(signed)
            if body is not None:
                request.headers["Content-Type"] = "application/json"
            return request

        return (yield from attempt(build, self.retry, idempotent=True))

    def bearer(
        self,
        build: Callable[[str], httpx.Request],
        *,
        idempotent: bool,
        rewindable: bool,
    ) -> Flow[httpx.Response]:
        """Send with ``Authorization: Bearer``; a cached token refused once is renewed.

        The server may refuse a token the cache still trusts (keys rotated, clocks
        apart): then one new token and one more try, if the body can be sent again.
        """
        fetches = self._fetches
        token = yield from self.token(None)
        # From the cache (this process's, or the token file a command before it left)
        # when getting it fetched nothing: only such a token is renewed once refused. One
        # just fetched and refused is the server's answer.
        reused = self._fetches == fetches
        try:
            return (
                yield from attempt(
                    lambda: build(token.authorization), self.retry, idempotent=idempotent
                )
            )
        except AuthenticationError:
            if not rewindable or not reused:
                raise
        self.forget(token)
        fresh = yield from self.token(None)
        return (
            yield from attempt(
                lambda: build(fresh.authorization), self.retry, idempotent=idempotent
            )
        )


def _fresh_for(token: Token) -> float:
    lifetime = token.lifetime
    if lifetime is None:  # no readable exp/iat: never reuse it
        return 0.0
    seconds = lifetime.total_seconds()
    return seconds - min(REFRESH_MARGIN, seconds * 0.2)


def response_json(response: httpx.Response) -> Any:
    """The JSON body of ``response``; a ``ServerError`` when it is not JSON."""
    try:
        return json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ServerError(
            response.status_code,
            "invalid_response",
            f"expected JSON from {response.request.url.path}, got "
            f"{response.headers.get('content-type', 'no content type')}",
            "api_error",
        ) from None
