"""What the SDK raises: one class per HTTP status family, parsed from the error envelope.

BerkasClientError                   anything the SDK raises on purpose
├── ConfigurationError              from_env/profiles: a setting missing or unreadable
├── ChecksumMismatch                downloaded bytes differ from the sha256 expected
├── ConnectionFailed                no HTTP answer (after the retries it was allowed)
└── BerkasAPIError                  a non-2xx answer; .status .code .message .type
    ├── InvalidRequestError         400
    ├── AuthenticationError         401
    ├── PermissionDeniedError       403
    ├── NotFoundError               404
    ├── ConflictError               409
    │   └── ReplayedError           409 carrying the first response again (.body)
    ├── TooLargeError               413
    ├── UnsupportedContentError     415
    ├── FetchError                  422
    ├── RateLimitError              429
    └── ServerError                 5xx (and any other status)
"""

from __future__ import annotations

import json
from typing import Any

from berkas.core.codes import Code, ErrorType

# The envelope every berkas error uses (docs/design.md 2.5); DOKU's non-SNAP APIs use the same.
_ENVELOPE_KEYS = ("code", "message", "type")


class BerkasClientError(Exception):
    """Base of every error the SDK raises on purpose."""


class ConfigurationError(BerkasClientError):
    """A client could not be configured: a variable unset, a profile missing, a
    config file that does not parse. ``message`` names what to set."""

    code = "configuration_invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ChecksumMismatch(BerkasClientError):
    """The downloaded bytes' SHA-256 is not the one expected (nothing was kept on disk)."""

    code = "checksum_mismatch"

    def __init__(self, expected: str, actual: str, size: int) -> None:
        message = (
            f"the {size} bytes received have sha256 {actual}, but the server reported {expected}"
        )
        super().__init__(message)
        self.message = message
        self.expected = expected
        self.actual = actual
        self.size = size


class ConnectionFailed(BerkasClientError):
    """The server gave no HTTP answer: refused, reset, timed out (retries included)."""

    code = "connection_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BerkasAPIError(BerkasClientError):
    """The server answered with a non-2xx status.

    ``code``, ``message`` and ``type`` come from the ``{"error": {...}}`` envelope; when
    the body is not that envelope (a proxy's HTML page, say) ``code`` is ``http_<status>``
    and ``message`` is the start of the body. ``body`` keeps the raw bytes.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        type: str,
        *,
        body: bytes = b"",
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.type = type
        self.body = body
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r})"


class InvalidRequestError(BerkasAPIError):
    """400: a field is missing or has a value the server does not accept."""


class AuthenticationError(BerkasAPIError):
    """401: unknown client, bad signature, stale timestamp, bad or expired token."""


class PermissionDeniedError(BerkasAPIError):
    """403: a valid caller touching what is not theirs, or an expired or altered link."""


class NotFoundError(BerkasAPIError):
    """404: no such resource visible to this client."""


class ConflictError(BerkasAPIError):
    """409: the Request-Id was used for a different request, or is still in progress."""


class ReplayedError(ConflictError):
    """409 with the first response to this Request-Id again (DOKU's idempotency rule).

    ``body`` is that first response; ``data`` is it parsed as JSON (None if it is not).
    """

    @property
    def data(self) -> Any:
        """The replayed first response body, parsed as JSON (None if it is not JSON)."""
        return _json(self.body)


class TooLargeError(BerkasAPIError):
    """413: the file or body is over its size cap."""


class UnsupportedContentError(BerkasAPIError):
    """415: the bytes are not a type the category accepts, or do not parse."""


class FetchError(BerkasAPIError):
    """422: the server refused or failed to fetch ``file_url``."""


class RateLimitError(BerkasAPIError):
    """429: too many requests."""


class ServerError(BerkasAPIError):
    """5xx (or an unexpected status): the server failed; 503 is retried automatically."""


_BY_STATUS: dict[int, type[BerkasAPIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    415: UnsupportedContentError,
    422: FetchError,
    429: RateLimitError,
}


def envelope(body: bytes) -> dict[str, str] | None:
    """The ``error`` object of a body shaped ``{"error": {code, message, type}}``, or None."""
    parsed = _json(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict) or not all(
        isinstance(error.get(key), str) for key in _ENVELOPE_KEYS
    ):
        return None
    return {key: error[key] for key in _ENVELOPE_KEYS}


def api_error(status: int, body: bytes, *, request_id: str | None = None) -> BerkasAPIError:
    """Build the error for a non-2xx answer, choosing the class by status.

    A 409 whose body is not a conflict envelope is the first response to the same
    Request-Id replayed (docs/design.md 2.1), so it becomes ``ReplayedError`` carrying that body.
    """
    found = envelope(body)
    if status == 409 and (found is None or found["type"] != ErrorType.CONFLICT):
        cls: type[BerkasAPIError] = ReplayedError
        if found is None:
            found = {
                "code": Code.REQUEST_REPLAYED.value,
                "message": "this Request-Id was already used for the same request; "
                "the first response is in .body",
                "type": ErrorType.CONFLICT.value,
            }
    else:
        cls = _BY_STATUS.get(status, ServerError)
    if found is None:
        text = body[:200].decode("utf-8", "replace").strip()
        found = {
            "code": f"http_{status}",
            "message": text or f"the server answered HTTP {status} with no error body",
            "type": ErrorType.API.value,
        }
    return cls(
        status, found["code"], found["message"], found["type"], body=body, request_id=request_id
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
