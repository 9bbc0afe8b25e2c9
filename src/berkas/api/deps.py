"""What every route needs from a request: the services, the bearer client, the signed
headers, a small JSON body. The one place the app's state is read."""

from __future__ import annotations

import json
from typing import Annotated, Any, cast

from fastapi import Depends, Request

from berkas.api import observe
from berkas.api.threads import in_thread
from berkas.core.codes import Code
from berkas.core.errors import AuthenticationFailed, InvalidRequest, PayloadTooLarge
from berkas.core.forwarded import client_address
from berkas.core.models import Caller, Client
from berkas.core.wire import API_PREFIX
from berkas.services.bundle import Services
from berkas.services.signed import SignedRequest
from berkas.services.tokens import claimed_client

MAX_JSON_BODY = 64 * 1024


async def services(request: Request) -> Services:
    """The bundle ``create_app`` was given.

    ``async`` although it does not wait for anything: FastAPI runs a plain ``def``
    dependency on a worker thread, and this one is resolved for every request, so as a
    ``def`` it cost every request a thread hop (a hand-off and back, under load the
    costliest part of a cheap request)."""
    return cast(Services, request.app.state.services)


ServicesDep = Annotated[Services, Depends(services)]


async def bearer(request: Request, svc: ServicesDep) -> Client:
    """The enabled client the ``Authorization: Bearer`` token was issued to (docs/design.md 2.2)."""
    header = request.headers.get("authorization", "").strip()
    scheme, _, token = header.partition(" ")
    if not header or (scheme.lower() == "bearer" and not token.strip()):
        raise AuthenticationFailed(
            f"Authorization: Bearer <token> is required; get a token from POST {API_PREFIX}/token.",
            code=Code.TOKEN_MISSING,
        )
    if scheme.lower() != "bearer":
        # A token sent bare (the commonest slip) is not "missing": say what is wrong.
        raise AuthenticationFailed(_not_bearer(scheme, token), code=Code.TOKEN_MALFORMED)
    try:
        client = await in_thread(svc.tokens.verify, token.strip())
    except AuthenticationFailed:
        observe.note_claimed(claimed_client(token.strip()))
        raise
    observe.note_client(client.client_id)
    # Counted once the caller is known: a forged Client-Id or token spends nobody's budget.
    svc.limits.admit_request(client.client_id)
    return client


BearerClient = Annotated[Client, Depends(bearer)]


def _not_bearer(scheme: str, rest: str) -> str:
    # The header's value is a credential: only a short scheme word is ever quoted back.
    if not rest and scheme.count(".") == 2:
        sent = "a token without the 'Bearer ' prefix"
    elif scheme.isascii() and scheme.isalpha() and len(scheme) <= 20:
        sent = f"the {scheme!r} scheme"
    else:
        sent = "something else"
    return (
        f"Authorization must be 'Bearer <token>' (RFC 6750 section 2.1); it carried {sent}. "
        f"Get a token from POST {API_PREFIX}/token."
    )


async def caller(request: Request, svc: ServicesDep) -> Caller:
    """Who is calling, for the audit trail: the client's address (through the proxies
    BERKAS_TRUSTED_PROXIES names, core/forwarded.py), its User-Agent, and the request id
    its access-log line carries (observe.RequestLog), so the two can be joined."""
    peer = request.client.host if request.client else None
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
    context = observe.current()
    return Caller(
        ip=client_address(peer, forwarded, svc.trusted_proxies),
        user_agent=request.headers.get("user-agent"),
        request_id=None if context is None else context.request_id,
    )


CallerDep = Annotated[Caller, Depends(caller)]


def signed_request(request: Request, body: bytes | None) -> SignedRequest:
    """DOKU's four headers and the exact bytes received (docs/design.md 2.1)."""
    headers = request.headers
    return SignedRequest(
        client_id=headers.get("client-id"),
        request_id=headers.get("request-id"),
        timestamp=headers.get("request-timestamp"),
        signature=headers.get("signature"),
        method=request.method,
        path=request.url.path,
        query=request.url.query,
        body=body,
    )


async def small_body(request: Request) -> bytes:
    """The whole body of a JSON request, refused past ``MAX_JSON_BODY``."""
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_JSON_BODY:
            raise PayloadTooLarge(
                f"request body is larger than {MAX_JSON_BODY // 1024} KB.", code=Code.BODY_TOO_LARGE
            )
    return bytes(chunks)


def json_object(body: bytes) -> dict[str, Any]:
    """``body`` parsed as a JSON object, or a 400 saying what was expected."""
    try:
        payload = json.loads(body)
    # ValueError covers JSONDecodeError, bad UTF-8 and Python's cap on integer digits
    # (CVE-2020-10735); RecursionError a body of deeply nested arrays.
    except (ValueError, RecursionError):
        raise InvalidRequest(
            'body must be a JSON object like {"grant_type": "client_credentials"}.',
            code=Code.INVALID_JSON,
        ) from None
    if not isinstance(payload, dict):
        raise InvalidRequest("body must be a JSON object.", code=Code.INVALID_JSON)
    return payload
