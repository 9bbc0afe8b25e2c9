"""The one error-to-HTTP mapping and the ``{"error": {...}}`` envelope (docs/design.md 2.5).

The table is the catalogue: a ``BerkasError``'s status and type are its code's
(``berkas.core.codes``), with two exceptions decided here:

- ``FetchRefused`` answers 422 whatever code it carries (a refused ``file_url`` fetch,
  or a fetched body refused for its size or content, keeps that cause's code);
- ``Replayed`` answers 409 with the first response's body, not an envelope;
- ``RateLimited`` (429) adds ``Retry-After`` in seconds (RFC 6585 section 4, RFC 9110
  section 10.2.3).

The framework's own failures get codes from the same catalogue: ``invalid_request`` (400,
a request that fails validation), ``not_found`` (404), ``method_not_allowed`` (405),
``http_error`` (any other status it raises) and ``internal_error`` (500; logged, no stack
trace on the wire).

A client that goes away before its request is read (``ClientDisconnect``) gets no answer:
nobody is left to read one. It is one INFO line and status 499 in ``/metrics`` (nginx's
"client closed request"), not a 500: a phone losing its signal is not a server fault.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from berkas.api import observe
from berkas.api.connections import answered_by_protocol
from berkas.core.codes import Code
from berkas.core.errors import (
    AuthenticationFailed,
    BerkasError,
    FetchRefused,
    RateLimited,
    Replayed,
)

log = logging.getLogger(__name__)

# Framework statuses with a code of their own; any other is ``http_error``.
_HTTP_CODES: dict[int, Code] = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED}

# Never sent (the client is gone); what /metrics counts a request abandoned mid-way as.
CLIENT_CLOSED_REQUEST = 499


def status_of(error: BerkasError) -> int:
    """The HTTP status for an error: its code's, or 422 for a refused ``file_url`` fetch."""
    return error.code.status_for(fetched=isinstance(error, FetchRefused))


def envelope(code: Code, message: str | None = None) -> dict[str, Any]:
    """``{"error": {"code", "message", "type"}}``; the message defaults to the code's.

    A 5xx also carries ``request_id`` (the ``Request-Id`` response header's value): the
    string that finds the server's log lines about it.
    """
    text = code.message if message is None else message
    error = {"code": code.value, "message": text, "type": code.error_type.value}
    context = observe.current()
    if code.status >= 500 and context is not None:
        error["request_id"] = context.request_id
    return {"error": error}


def error_body(error: BerkasError) -> bytes:
    return json.dumps(envelope(error.code, error.message)).encode()


def crash_body() -> bytes:
    """The 500 for an unexpected failure (``observe.RequestLog`` sends it, once it has
    logged the traceback): the envelope and the request id, no internals."""
    return json.dumps(envelope(Code.INTERNAL_ERROR)).encode()


def _log_answer(error: BerkasError, status: int) -> None:
    observe.note_error(error.code.value)
    if status >= 500:
        # Expected outages (database, store, full disk): one line with the cause for the
        # operator, no traceback (the cause is the driver's, and the line repeats for
        # every request while it lasts). Unexpected failures are on_crash's, below.
        cause = error.__cause__
        log.warning(
            "answered %d %s: %s%s",
            status,
            error.code.value,
            error.message,
            f" (cause: {type(cause).__name__}: {cause})" if cause is not None else "",
        )
    elif status == 401:
        # Why a caller was refused, for an operator debugging a partner's integration;
        # the partner's message already says it, and at INFO it would be noise.
        log.debug("answered 401 %s: %s", error.code.value, error.message)


def error_response(error: BerkasError) -> Response:
    """The response for a raised ``BerkasError`` (a replay answers with the first body)."""
    # RFC 6750 section 3: a refused bearer token names the scheme; HMAC-signed endpoints
    # (token, requirements) have no registered scheme to name, so they get none.
    bearer = isinstance(error, AuthenticationFailed) and error.code.startswith("token_")
    # Without any token the challenge carries no error code (RFC 6750 section 3.1).
    challenge = "Bearer" if error.code is Code.TOKEN_MISSING else 'Bearer error="invalid_token"'
    headers = {"WWW-Authenticate": challenge} if bearer else None
    _log_answer(error, status_of(error))
    if isinstance(error, RateLimited):
        # RFC 6585 section 4: a 429 "MAY include a Retry-After header"; delay-seconds is
        # a whole number (RFC 9110 section 10.2.3), rounded up by the limiter.
        headers = {"Retry-After": str(error.retry_after)}
    elif error.code is Code.REQUEST_TIMEOUT:
        # RFC 9110 section 15.5.9: a 408 closes the connection (the body never came).
        headers = {"Connection": "close"}
    if isinstance(error, Replayed):
        return Response(error.body, status_code=status_of(error), media_type=error.content_type)
    return Response(
        error_body(error),
        status_code=status_of(error),
        media_type="application/json",
        headers=headers,
    )


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method some route answers on ``scope``'s path, in a fixed order.

    Asked of each route as the router asks it (``matches``: a full match is path and
    method), so routers included in others count too; a mount (the docs' assets) is its
    app's business and answers its own 405."""
    return [
        method
        for method in _METHODS
        if any(
            not isinstance(route, Mount)
            and route.matches({**scope, "method": method})[0] is Match.FULL
            for route in routes
        )
    ]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def install(app: FastAPI) -> None:
    """Route every failure, ours or the framework's, through the one envelope."""

    async def on_berkas(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, BerkasError)
        return error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        message = f"{where}: {first.get('msg', 'invalid value')}."
        observe.note_error(Code.INVALID_REQUEST.value)
        return JSONResponse(
            envelope(Code.INVALID_REQUEST, message), status_code=Code.INVALID_REQUEST.status
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        # The framework's status stands: it is the member's for 404 and 405, and
        # ``http_error`` carries whatever else the framework raised, with its detail.
        code = _HTTP_CODES.get(exc.status_code)
        observe.note_error((code or Code.HTTP_ERROR).value)
        body = envelope(Code.HTTP_ERROR, str(exc.detail)) if code is None else envelope(code)
        headers = exc.headers
        if exc.status_code == 405 and request.scope.get("root_path") == "":
            allowed = allowed_methods(request.app.router.routes, request.scope)
            # RFC 9110 section 15.5.6: a 405 "MUST generate an Allow header field"
            # listing the target's methods. Starlette names only the first route that
            # matched the path (GET /file), not every route on it (POST /file too).
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            body = envelope(
                Code.METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed on this path; it allows {', '.join(allowed)}.",
            )
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    async def on_disconnect(request: Request, _: Exception) -> Response:
        # What was read is already discarded (the multipart reader removes its spool on
        # any error); the server is fine, so no traceback and no ERROR. Unless the
        # connection layer answered (a malformed chunked body, say) and logged it itself.
        status = answered_by_protocol(request.scope, CLIENT_CLOSED_REQUEST)
        if status == CLIENT_CLOSED_REQUEST:
            log.info(
                "client disconnected before its request was read: %s %s",
                request.method,
                request.url.path,
            )
        return Response(status_code=status)

    app.add_exception_handler(BerkasError, on_berkas)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(ClientDisconnect, on_disconnect)
