"""The error tree every layer raises; ``berkas.api.errors`` maps it to HTTP once.

    BerkasError                       api_error
    ├── InvalidRequest                invalid_request_error   (400)
    ├── AuthenticationFailed          authentication_error    (401)
    ├── PermissionDenied              permission_error        (403)
    ├── NotFound                      not_found_error         (404)
    ├── Conflict                      conflict_error          (409)
    │   └── Replayed                  (409, carries the first response body)
    ├── PayloadTooLarge               invalid_request_error   (413)
    ├── UnsupportedContent            invalid_request_error   (415)
    ├── FetchRefused                  invalid_request_error   (422)
    ├── RateLimited                   rate_limit_error        (429)
    └── Unavailable                   api_error               (503)

Each instance carries a snake_case wire ``code`` and a human ``message`` that names the
field, what was wrong and what is accepted (DESIGN 2.5).
"""

from __future__ import annotations


class BerkasError(Exception):
    """Base of every error berkas raises on purpose."""

    default_code = "api_error"
    error_type = "api_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidRequest(BerkasError):
    """The request is malformed or a field has a value we do not accept."""

    default_code = "invalid_request"
    error_type = "invalid_request_error"


class AuthenticationFailed(BerkasError):
    """Unknown client, bad signature, stale timestamp, bad or expired token."""

    default_code = "authentication_failed"
    error_type = "authentication_error"


class PermissionDenied(BerkasError):
    """A valid caller (or a link holder) touching what is not theirs or no longer valid."""

    default_code = "permission_denied"
    error_type = "permission_error"


class NotFound(BerkasError):
    """No such resource visible to this caller (existence is never revealed)."""

    default_code = "not_found"
    error_type = "not_found_error"


class Conflict(BerkasError):
    """The request clashes with an earlier one (Request-Id reused, duplicate client)."""

    default_code = "conflict"
    error_type = "conflict_error"


class Replayed(Conflict):
    """A Request-Id seen before with the same request: answer with the first body, 409.

    DOKU's idempotency rule: a repeated Request-Id gets the first response again.
    """

    default_code = "request_replayed"

    def __init__(self, body: bytes, *, content_type: str = "application/json") -> None:
        super().__init__("This Request-Id was already used for the same request.")
        self.body = body
        self.content_type = content_type


class PayloadTooLarge(BerkasError):
    """The body or file is over its cap (enforced while streaming)."""

    default_code = "file_too_large"
    error_type = "invalid_request_error"


class UnsupportedContent(BerkasError):
    """The bytes are not a type this category accepts, or do not parse as that type."""

    default_code = "unsupported_type"
    error_type = "invalid_request_error"


class FetchRefused(BerkasError):
    """Fetching ``file_url`` was refused or failed (DESIGN 4); each cause has its own code."""

    default_code = "fetch_failed"
    error_type = "invalid_request_error"


class RateLimited(BerkasError):
    """Too many requests."""

    default_code = "rate_limited"
    error_type = "rate_limit_error"


class Unavailable(BerkasError):
    """A dependency (database, storage) is unreachable; safe to retry later."""

    default_code = "service_unavailable"
    error_type = "api_error"
