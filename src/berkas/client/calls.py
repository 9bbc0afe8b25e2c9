"""The partner API's calls, written once as flows (see ``flow``) for both clients.

Owns request building (DOKU signing, bearer tokens, multipart uploads), the token cache
and response parsing. ``BerkasClient`` and ``AsyncBerkasClient`` only perform the I/O.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Self, TypeVar
from urllib.parse import quote

import httpx

from berkas import __version__
from berkas.client import models, profiles
from berkas.client.errors import (
    AuthenticationError,
    ChecksumMismatch,
    ConfigurationError,
    ConnectionFailed,
    ServerError,
)
from berkas.client.flow import Flow, RetryPolicy, Sleep, attempt, pump
from berkas.client.models import DryRunResult, FileInfo, Requirements, Token, UploadedFile
from berkas.client.streams import (
    Counted,
    FileInput,
    Meter,
    OnProgress,
    Sink,
    content_length,
    file_part,
    put,
)
from berkas.core.catalogue import Category, DocumentCode
from berkas.core.signing import signed_headers
from berkas.core.wire import API_PREFIX

PREFIX = API_PREFIX
# berkas's dry-run switch on POST /file; DOKU does not know it.
DRY_RUN_HEADER = "Berkas-Dry-Run"
USER_AGENT = f"berkas-client/{__version__}"
# Refresh a cached token this long before it expires (or after 80% of a short life), so
# a request never leaves with a token that expires in flight.
REFRESH_MARGIN = 60.0

_Part = tuple[str | None, Any, str | None]


@dataclass(frozen=True, slots=True)
class _Cached:
    token: Token
    minutes: int | None
    refresh_at: float


HttpT = TypeVar("HttpT", httpx.Client, httpx.AsyncClient)
TransportT = TypeVar("TransportT", httpx.BaseTransport, httpx.AsyncBaseTransport)


class Calls(Generic[HttpT, TransportT]):
    """State and flows shared by the sync and async clients."""

    _http_class: type[HttpT]

    def __init__(
        self,
        base_url: str,
        client_id: str,
        secret_key: str,
        *,
        transport: TransportT | None = None,
        timeout: float = 30.0,
        token_minutes: int | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """See ``BerkasClient``: the arguments are the same for both clients."""
        # The subclass pairs its transport type with its httpx client class; mypy
        # cannot follow that pairing through two type variables, hence Any here.
        http_class: Any = self._http_class
        self._http: HttpT = http_class(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
        )
        self._client_id = client_id
        self._secret_key = secret_key
        self._token_minutes = token_minutes
        self._retry = retry if retry is not None else RetryPolicy()
        self._clock = clock
        self._cached: _Cached | None = None

    @classmethod
    def from_env(
        cls,
        *,
        profile: str | None = None,
        env: Mapping[str, str] | None = None,
        config_path: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> Self:
        """A client configured as the ``berkas partner`` CLI is, without flags.

        Reads ``BERKAS_CLIENT_BASE_URL`` (default ``http://127.0.0.1:8000``),
        ``BERKAS_CLIENT_ID`` and ``BERKAS_CLIENT_SECRET``; what they leave unset comes
        from ``profile`` (or the ``default`` profile, if any) in
        ``$XDG_CONFIG_HOME/berkas/config.toml``. ``options`` are the constructor's
        keyword arguments. Raises ``ConfigurationError`` naming what is missing.
        """
        found = profiles.resolve(
            env=env,
            profile=profile,
            path=None if config_path is None else Path(config_path),
        )
        if found.client_id is None or found.secret_key is None:
            missing = profiles.ENV_CLIENT_ID if found.client_id is None else profiles.ENV_SECRET_KEY
            raise ConfigurationError(
                f"{missing} is not set and no profile gives it "
                "(save one with: berkas partner configure)"
            )
        return cls(found.base_url, found.client_id, found.secret_key, **options)

    # -- flows, one per public method ------------------------------------------------

    def _token(self, valid_time: int | None) -> Flow[Token]:
        minutes = valid_time if valid_time is not None else self._token_minutes
        cached = self._cached
        if cached is not None and cached.minutes == minutes and self._clock() < cached.refresh_at:
            return cached.token
        # DOKU's body: valid_time is a string of minutes (DESIGN 2.2).
        payload: dict[str, str] = {"grant_type": "client_credentials"}
        if minutes is not None:
            payload["valid_time"] = str(minutes)
        body = json.dumps(payload, separators=(",", ":")).encode()
        # Anchor the cache on our own clock, taken before asking: exp - iat says how long
        # the token lives, and using that span rather than exp itself makes the cache
        # immune to skew between our clock and the server's.
        asked_at = self._clock()
        response = yield from self._signed("POST", f"{PREFIX}/token", body=body)
        token = models.parse_token(_json(response))
        self._cached = _Cached(token, minutes, asked_at + _fresh_for(token))
        return token

    def _requirements(
        self, business_type: str, legal_entity: str, brand_business_line: str, nationality: str
    ) -> Flow[Requirements]:
        params = {
            "businessType": str(business_type),
            "businessLegalEntity": legal_entity,
            "brandBusinessLine": brand_business_line,
            "businessContactNationality": nationality,
        }
        response = yield from self._signed("GET", f"{PREFIX}/file", params=params)
        return models.parse_requirements(_json(response))

    def _upload(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None,
        filename: str | None,
        request_id: str | None,
        on_progress: OnProgress | None = None,
    ) -> Flow[UploadedFile]:
        body = yield from self._post_file(
            category,
            file,
            code=code,
            filename=filename,
            request_id=request_id,
            on_progress=on_progress,
            dry_run=False,
        )
        return models.parse_uploaded(body)

    def _check(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None,
        filename: str | None,
        on_progress: OnProgress | None = None,
    ) -> Flow[DryRunResult]:
        body = yield from self._post_file(
            category,
            file,
            code=code,
            filename=filename,
            request_id=None,
            on_progress=on_progress,
            dry_run=True,
        )
        return models.parse_dry_run(body)

    def _upload_url(
        self,
        category: Category | str,
        url: str,
        *,
        code: DocumentCode | str | None,
        request_id: str | None,
    ) -> Flow[UploadedFile]:
        body = yield from self._post_url(
            category, url, code=code, request_id=request_id, dry_run=False
        )
        return models.parse_uploaded(body)

    def _check_url(
        self, category: Category | str, url: str, *, code: DocumentCode | str | None
    ) -> Flow[DryRunResult]:
        body = yield from self._post_url(category, url, code=code, request_id=None, dry_run=True)
        return models.parse_dry_run(body)

    def _file(self, file_id: str) -> Flow[FileInfo]:
        # Quoted whole: an id is never allowed to add path segments ("../token").
        path = f"{PREFIX}/file/{quote(file_id, safe='')}"
        response = yield from self._bearer(
            lambda auth: self._build("GET", path, headers={"Authorization": auth}),
            idempotent=True,
            rewindable=True,
        )
        return models.parse_file_info(_json(response))

    def _download(
        self, link: str, sha256: str | None, on_progress: OnProgress | None
    ) -> Flow[bytes]:
        body = bytearray()
        yield from self._receive(link, body.extend, body.clear, sha256, on_progress)
        return bytes(body)

    def _download_to(
        self,
        link: str,
        target: str | os.PathLike[str] | Sink,
        sha256: str | None,
        overwrite: bool,
        on_progress: OnProgress | None,
    ) -> Flow[int]:
        if not isinstance(target, str | os.PathLike):
            # A stream (stdout, a socket): bytes already written cannot be taken back,
            # so a body that breaks off is not retried, and a bad checksum is reported
            # after the fact.
            size, _ = yield from self._receive(link, target.write, None, sha256, on_progress)
            return size
        path = Path(target)
        # Written beside the target and renamed when complete (and verified), so
        # ``path`` never holds a partial or corrupted download.
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with partial.open("wb") as sink:

                def rewind() -> None:
                    sink.seek(0)
                    sink.truncate()

                size, _ = yield from self._receive(link, sink.write, rewind, sha256, on_progress)
                sink.flush()
                os.fsync(sink.fileno())
            put(partial, path, overwrite=overwrite)
            return size
        finally:
            partial.unlink(missing_ok=True)

    def _receive(
        self,
        link: str,
        write: Callable[[bytes], object],
        rewind: Callable[[], None] | None,
        sha256: str | None,
        on_progress: OnProgress | None,
    ) -> Flow[tuple[int, str]]:
        """Stream a link's body into ``write``; return (size, sha256 hex).

        No Authorization header: a link is its own credential, and it may point at
        another host (a CDN, a proxy) that must never see the partner's bearer token. A
        body that breaks off is fetched again from the start after ``rewind`` (none: not
        retried). With ``sha256`` the digest must match or ``ChecksumMismatch`` raises.
        """
        tries = 0
        while True:
            response = yield from attempt(
                lambda: self._build("GET", link), self._retry, idempotent=True, stream=True
            )
            meter = Meter(write, content_length(response), on_progress)
            failure = yield from pump(response, meter)
            if failure is None:
                actual = meter.digest.hexdigest()
                if sha256 is not None and actual != sha256.lower():
                    raise ChecksumMismatch(sha256.lower(), actual, meter.received)
                return meter.received, actual
            delay = None if rewind is None else self._retry.delay(tries)
            if delay is None:
                raise ConnectionFailed(
                    f"download broke off after {meter.received} bytes: {failure!r}"
                ) from failure
            assert rewind is not None
            rewind()
            tries += 1
            yield Sleep(delay)

    # -- request building ------------------------------------------------------------

    def _build(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        files: list[tuple[str, _Part]] | None = None,
    ) -> httpx.Request:
        return self._http.build_request(
            method, url, headers=headers, params=params, content=content, files=files
        )

    def _signed(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Flow[httpx.Response]:
        """Send a DOKU-signed request (DESIGN 2.1), retrying under one Request-Id.

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
            request = self._build(method, path, params=params, content=body)
            now = self._clock()
            if not signed or now - signed_at > self._retry.reuse_signature_for:
                signed = signed_headers(
                    client_id=self._client_id,
                    secret_key=self._secret_key,
                    # The path alone: berkas accepts it with or without the query, and
                    # DOKU's own examples sign the path (DESIGN 2.1).
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

        return (yield from attempt(build, self._retry, idempotent=True))

    def _bearer(
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
        cached = self._cached
        token = yield from self._token(None)
        try:
            return (
                yield from attempt(
                    lambda: build(token.authorization), self._retry, idempotent=idempotent
                )
            )
        except AuthenticationError:
            if not rewindable or cached is None or cached.token is not token:
                raise
        self._cached = None
        fresh = yield from self._token(None)
        return (
            yield from attempt(
                lambda: build(fresh.authorization), self._retry, idempotent=idempotent
            )
        )

    def _post_file(
        self,
        category: Category | str,
        file: FileInput,
        *,
        code: DocumentCode | str | None,
        filename: str | None,
        request_id: str | None,
        on_progress: OnProgress | None,
        dry_run: bool,
    ) -> Flow[Any]:
        """POST /file with a ``file`` part: an upload, or its dry run; the answer's JSON."""
        with ExitStack() as stack:
            name, content, rewindable = file_part(file, filename, stack)
            if on_progress is not None:
                content = Counted.around(content, on_progress)
            parts = [*_fields(category, code), ("file", (name, content, None))]
            response = yield from self._post_parts(
                parts, request_id, rewindable=rewindable, dry_run=dry_run
            )
        return _json(response)

    def _post_url(
        self,
        category: Category | str,
        url: str,
        *,
        code: DocumentCode | str | None,
        request_id: str | None,
        dry_run: bool,
    ) -> Flow[Any]:
        """POST /file with ``file_url``: the server fetches (upload or dry run)."""
        parts = [*_fields(category, code), ("file_url", (None, url, None))]
        response = yield from self._post_parts(parts, request_id, rewindable=True, dry_run=dry_run)
        return _json(response)

    def _post_parts(
        self,
        parts: list[tuple[str, _Part]],
        request_id: str | None,
        *,
        rewindable: bool,
        dry_run: bool,
    ) -> Flow[httpx.Response]:
        def build(auth: str) -> httpx.Request:
            headers = {"Authorization": auth}
            if request_id is not None:
                # DESIGN 3: an upload with a Request-Id is idempotent on the server.
                headers["Request-Id"] = request_id
            if dry_run:
                # berkas only: every check runs; nothing is stored, no Request-Id kept.
                headers[DRY_RUN_HEADER] = "true"
            return self._build("POST", f"{PREFIX}/file", headers=headers, files=parts)

        # Without a Request-Id a repeat could store the file twice, so only failures
        # before any byte was sent are retried (see ``flow.attempt``); a dry run stores
        # nothing, so sending it again is as harmless as a GET.
        safe = request_id is not None or dry_run
        return (
            yield from self._bearer(build, idempotent=safe and rewindable, rewindable=rewindable)
        )


def _fresh_for(token: Token) -> float:
    lifetime = token.lifetime
    if lifetime is None:  # no readable exp/iat: never reuse it
        return 0.0
    seconds = lifetime.total_seconds()
    return seconds - min(REFRESH_MARGIN, seconds * 0.2)


def _fields(category: Category | str, code: DocumentCode | str | None) -> list[tuple[str, _Part]]:
    # (None, value) parts: the body stays multipart/form-data even without a file, as
    # DOKU's upload requires; text parts before the file let the server apply the
    # category's size cap while streaming.
    fields: list[tuple[str, _Part]] = [("category", (None, str(category), None))]
    if code is not None:
        fields.append(("code", (None, str(code), None)))
    return fields


def _json(response: httpx.Response) -> Any:
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
