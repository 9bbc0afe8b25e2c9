"""The one error-to-HTTP table and the ``{"error": {...}}`` envelope (DESIGN 2.5).

BerkasError subclass      HTTP   type
InvalidRequest            400    invalid_request_error
AuthenticationFailed      401    authentication_error
PermissionDenied          403    permission_error
NotFound                  404    not_found_error
Conflict / Replayed       409    conflict_error
PayloadTooLarge           413    invalid_request_error
UnsupportedContent        415    invalid_request_error
FetchRefused              422    invalid_request_error
RateLimited               429    rate_limit_error
Unavailable               503    api_error
anything else             500    api_error (logged; no stack trace on the wire)
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from berkas.core.errors import (
    AuthenticationFailed,
    BerkasError,
    Conflict,
    FetchRefused,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Replayed,
    Unavailable,
    UnsupportedContent,
)

log = logging.getLogger(__name__)

STATUS: dict[type[BerkasError], int] = {
    InvalidRequest: 400,
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedContent: 415,
    FetchRefused: 422,
    RateLimited: 429,
    Unavailable: 503,
}

_HTTP_CODES: dict[int, tuple[str, str, str]] = {
    404: ("not_found", "not_found_error", "No such endpoint."),
    405: ("method_not_allowed", "invalid_request_error", "This method is not allowed here."),
}


def status_of(error: BerkasError) -> int:
    """The HTTP status for an error: the nearest class in the table wins."""
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def envelope(code: str, message: str, error_type: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "type": error_type}}


def error_body(error: BerkasError) -> bytes:
    return json.dumps(envelope(error.code, error.message, error.error_type)).encode()


def error_response(error: BerkasError) -> Response:
    """The response for a raised ``BerkasError`` (a replay answers with the first body)."""
    # RFC 6750 section 3: a refused bearer token names the scheme; HMAC-signed endpoints
    # (token, requirements) have no registered scheme to name, so they get none.
    bearer = isinstance(error, AuthenticationFailed) and error.code.startswith("token_")
    # Without any token the challenge carries no error code (RFC 6750 section 3.1).
    challenge = "Bearer" if error.code == "token_missing" else 'Bearer error="invalid_token"'
    headers = {"WWW-Authenticate": challenge} if bearer else None
    if isinstance(error, Replayed):
        return Response(error.body, status_code=409, media_type=error.content_type)
    return Response(
        error_body(error),
        status_code=status_of(error),
        media_type="application/json",
        headers=headers,
    )


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
        return JSONResponse(
            envelope("invalid_request", message, "invalid_request_error"), status_code=400
        )

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code, kind, message = _HTTP_CODES.get(
            exc.status_code, ("http_error", "invalid_request_error", str(exc.detail))
        )
        return JSONResponse(
            envelope(code, message, kind), status_code=exc.status_code, headers=exc.headers
        )

    async def on_crash(_: Request, exc: Exception) -> Response:
        # Logged with its traceback for the operator; the caller gets no internals.
        log.error("unhandled error", exc_info=exc)
        return JSONResponse(
            envelope("internal_error", "The server failed to handle this request.", "api_error"),
            status_code=500,
        )

    app.add_exception_handler(BerkasError, on_berkas)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
