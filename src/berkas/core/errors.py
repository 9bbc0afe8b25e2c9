"""The error tree every layer raises; ``berkas.api.errors`` maps it to HTTP once.

    BerkasError                       api_error
    ├── InvalidRequest                invalid_request
    ├── AuthenticationFailed          authentication_failed
    ├── PermissionDenied              permission_denied
    ├── NotFound                      not_found
    ├── RequestTimeout                request_timeout (a request body that stalls)
    ├── Conflict                      conflict
    │   └── Replayed                  request_replayed (carries the first response body)
    ├── PayloadTooLarge               file_too_large
    ├── UnsupportedContent            unsupported_type
    ├── FetchRefused                  fetch_failed (any code, answered as a fetch refusal)
    ├── RateLimited                   rate_limited
    └── Unavailable                   service_unavailable
        └── InsufficientStorage       insufficient_storage (a full disk)

The classes are the families a caller catches, each shown with its default code. Each
instance carries a wire ``code`` from the catalogue (``berkas.core.codes``), which knows
its HTTP status and type, and a human ``message`` that names the field, what was wrong
and what is accepted (docs/design.md 2.5).
"""

from __future__ import annotations

import errno
from typing import ClassVar

from berkas.core.codes import Code


class BerkasError(Exception):
    """Base of every error berkas raises on purpose.

    ``code`` is a ``Code`` member, which equals its wire string (``code == "token_expired"``);
    without a ``message`` the code's default message is used.
    """

    default_code: ClassVar[Code] = Code.API_ERROR

    def __init__(self, message: str | None = None, *, code: Code | None = None) -> None:
        self.code: Code = self.default_code if code is None else code
        self.message: str = self.code.message if message is None else message
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, message={self.message!r})"


class InvalidRequest(BerkasError):
    """The request is malformed or a field has a value we do not accept."""

    default_code = Code.INVALID_REQUEST


class AuthenticationFailed(BerkasError):
    """Unknown client, bad signature, stale timestamp, bad or expired token."""

    default_code = Code.AUTHENTICATION_FAILED


class PermissionDenied(BerkasError):
    """A valid caller (or a link holder) touching what is not theirs or no longer valid."""

    default_code = Code.PERMISSION_DENIED


class NotFound(BerkasError):
    """No such resource visible to this caller (existence is never revealed)."""

    default_code = Code.NOT_FOUND


class RequestTimeout(BerkasError):
    """The client stopped sending its request; the connection is closed after the answer."""

    default_code = Code.REQUEST_TIMEOUT


class Conflict(BerkasError):
    """The request clashes with an earlier one (Request-Id reused, duplicate client)."""

    default_code = Code.CONFLICT


class Replayed(Conflict):
    """A Request-Id seen before with the same request: answer with the first body, 409.

    DOKU's idempotency rule: a repeated Request-Id gets the first response again.
    """

    default_code = Code.REQUEST_REPLAYED

    def __init__(self, body: bytes, *, content_type: str = "application/json") -> None:
        super().__init__()
        self.body = body
        self.content_type = content_type


class PayloadTooLarge(BerkasError):
    """The body or file is over its cap (enforced while streaming)."""

    default_code = Code.FILE_TOO_LARGE


class UnsupportedContent(BerkasError):
    """The bytes are not a type this category accepts, or do not parse as that type."""

    default_code = Code.UNSUPPORTED_TYPE


class FetchRefused(BerkasError):
    """Fetching ``file_url`` was refused or failed (docs/design.md 4); each cause has its own code.

    Always answered 422, whatever code it carries: a fetched body refused for its size or
    content is re-raised as this, keeping its own code (members marked ``fetch_refusal``).
    """

    default_code = Code.FETCH_FAILED


class RateLimited(BerkasError):
    """A limit is reached (README "Limits"); ``retry_after`` is whole seconds to wait."""

    default_code = Code.RATE_LIMITED

    def __init__(
        self, message: str | None = None, *, code: Code | None = None, retry_after: int = 1
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(BerkasError):
    """A dependency (database, storage) is unreachable; safe to retry later."""

    default_code = Code.SERVICE_UNAVAILABLE


class InsufficientStorage(Unavailable):
    """The disk under the spool, the blobs or the database is full (ENOSPC, SQLITE_FULL).

    An ``Unavailable``: retrying once space is freed succeeds, with no restart.
    """

    default_code = Code.INSUFFICIENT_STORAGE


# /readyz calls a disk with less room than this full (spool, blobs, SQLite file): it could
# not take even a small upload, nor the write-ahead-log pages its row needs.
FULL_BELOW_BYTES = 1024 * 1024

# ENOSPC: the file system is full; EDQUOT: the user's quota is (write(2), open(2)).
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(error: BaseException) -> bool:
    """True for an ``OSError`` saying the disk (or a quota) has no room left."""
    return isinstance(error, OSError) and error.errno in _FULL_ERRNOS
