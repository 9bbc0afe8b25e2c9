"""The error-code catalogue (docs/design.md 2.5): every wire ``code`` berkas answers with, and its
HTTP status, error type and default message. API, SDK and README all read it from here.

``python -m berkas.core.codes --markdown`` prints the README's table of codes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from enum import StrEnum


class ErrorType(StrEnum):
    """The envelope's ``type`` (docs/design.md 2.5): the family a partner's code can branch on."""

    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    PERMISSION = "permission_error"
    NOT_FOUND = "not_found_error"
    CONFLICT = "conflict_error"
    RATE_LIMIT = "rate_limit_error"
    API = "api_error"


# The type follows from the status (docs/design.md 2.5), so a member states its status only.
_TYPE_OF_STATUS = {
    400: ErrorType.INVALID_REQUEST,
    401: ErrorType.AUTHENTICATION,
    403: ErrorType.PERMISSION,
    404: ErrorType.NOT_FOUND,
    405: ErrorType.INVALID_REQUEST,
    408: ErrorType.INVALID_REQUEST,
    409: ErrorType.CONFLICT,
    413: ErrorType.INVALID_REQUEST,
    415: ErrorType.INVALID_REQUEST,
    422: ErrorType.INVALID_REQUEST,
    431: ErrorType.INVALID_REQUEST,
    429: ErrorType.RATE_LIMIT,
    500: ErrorType.API,
    503: ErrorType.API,
    507: ErrorType.API,
}

FETCH_REFUSAL_STATUS = 422
"""A ``file_url`` upload that fails is 422 whatever refused it (docs/design.md 2.5, 4.2): the
fetch itself, or the fetched body's size or content, which keeps its own code."""

FETCHED = True
"""Marks a member that can also refuse a fetched body, and then answers 422."""


class Code(StrEnum):
    """A wire error code; a member equals its snake_case value (``Code.X == "x"``).

    ``status`` is the HTTP status when the code is raised directly; a member marked
    ``fetch_refusal`` may also come as the refusal of a ``file_url`` fetch, and then
    answers ``FETCH_REFUSAL_STATUS`` (see ``status_for``).
    """

    status: int
    message: str
    fetch_refusal: bool

    # Defaults keep ``Code("file_too_large")`` (a lookup, never a call to this) well typed.
    def __new__(
        cls, value: str, status: int = 500, message: str = "", fetch_refusal: bool = False
    ) -> Code:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.message = message
        member.fetch_refusal = fetch_refusal or status == FETCH_REFUSAL_STATUS
        return member

    # 400: bad input; the raise site's message names the field.
    INVALID_REQUEST = (
        "invalid_request",
        400,
        "The request is malformed or a field has a value that is not accepted.",
    )
    HTTP_ERROR = (
        "http_error",
        400,
        "The web framework refused the request; the answer keeps the framework's status.",
    )
    INVALID_JSON = ("invalid_json", 400, "The body must be a JSON object.")
    GRANT_TYPE_INVALID = ("grant_type_invalid", 400, 'grant_type must be "client_credentials".')
    INVALID_VALID_TIME = (
        "invalid_valid_time",
        400,
        "valid_time must be a whole number of minutes within the server's maximum.",
    )
    INVALID_REQUEST_ID = ("invalid_request_id", 400, "The Request-Id header is not valid.")
    PARAMETER_MISSING = ("parameter_missing", 400, "A required query parameter is missing.")
    PARAMETER_REPEATED = ("parameter_repeated", 400, "A query parameter is given twice.")
    INVALID_PARAMETER = ("invalid_parameter", 400, "A query parameter's value is not supported.")
    # The file list's query (docs/design.md 3.5).
    UNKNOWN_PARAMETER = (
        "unknown_parameter",
        400,
        "A query parameter is not one this operation takes.",
    )
    LIMIT_INVALID = ("limit_invalid", 400, "limit must be a whole number from 1 to 100.")
    CURSOR_CONFLICT = (
        "cursor_conflict",
        400,
        "starting_after and ending_before are both given; send one.",
    )
    CURSOR_INVALID = (
        "cursor_invalid",
        400,
        "starting_after or ending_before names no file of yours.",
    )
    CREATED_INVALID = (
        "created_invalid",
        400,
        "created_gte and created_lt are RFC 3339 times (2026-12-07T08:45:42Z) or dates, "
        "created_gte before created_lt.",
    )
    CATEGORY_MISSING = ("category_missing", 400, "The category field is required.")
    CATEGORY_INVALID = ("category_invalid", 400, "The category is not one berkas accepts.")
    CODE_MISSING = ("code_missing", 400, "The code field is required for a DOCUMENT.")
    CODE_INVALID = ("code_invalid", 400, "The code is not a document code.")
    FILE_OR_URL_REQUIRED = (
        "file_or_url_required",
        400,
        "Send exactly one of file and file_url.",
    )
    URL_UPLOAD_DISABLED = (
        "url_upload_disabled",
        400,
        "file_url uploads are not enabled on this server.",
    )
    MULTIPART_REQUIRED = ("multipart_required", 400, "The body must be multipart/form-data.")
    MULTIPART_MALFORMED = ("multipart_malformed", 400, "The multipart body does not parse.")
    MULTIPART_TOO_MANY_PARTS = (
        "multipart_too_many_parts",
        400,
        "The multipart body has too many parts.",
    )
    UNKNOWN_FIELD = ("unknown_field", 400, "A file part is sent in a field other than file.")
    MULTIPLE_FILES = ("multiple_files", 400, "More than one file part is sent.")
    DUPLICATE_FIELD = ("duplicate_field", 400, "A form field appears more than once.")
    FIELD_TOO_LONG = ("field_too_long", 400, "A form field is too long.")
    FIELD_INVALID = ("field_invalid", 400, "A form field is not valid UTF-8.")
    # Answered by the connection layer (api/connections.py), before any route runs.
    MALFORMED_HTTP = (
        "malformed_http",
        400,
        "The request line, headers or chunked body do not parse as HTTP/1.1.",
    )
    INVALID_IDEMPOTENCY_KEY = (
        "invalid_idempotency_key",
        400,
        "The Idempotency-Key (or Request-Id) header is not valid.",
    )
    INVALID_DRY_RUN = (
        "invalid_dry_run",
        400,
        "The Berkas-Dry-Run header is true or false.",
    )
    EMPTY_FILE = ("empty_file", 400, "The file is empty.", FETCHED)
    CLIENT_ID_INVALID = ("client_id_invalid", 400, "The client id is not a valid Client-Id.")
    CLIENT_LABEL_INVALID = ("client_label_invalid", 400, "The client label is not valid.")
    UNKNOWN_CLIENT = ("unknown_client", 400, "The client id is not a registered client.")
    INVALID_KEY = ("invalid_key", 400, "The storage key is not valid.")

    # 401: who is calling could not be established.
    AUTHENTICATION_FAILED = ("authentication_failed", 401, "Authentication failed.")
    HEADER_MISSING = ("header_missing", 401, "A header signed requests need is missing.")
    SIGNATURE_INVALID = (
        "signature_invalid",
        401,
        "The Client-Id is unknown or the Signature does not match the request.",
    )
    TIMESTAMP_INVALID = ("timestamp_invalid", 401, "The Request-Timestamp is not valid.")
    TIMESTAMP_OUT_OF_WINDOW = (
        "timestamp_out_of_window",
        401,
        "The Request-Timestamp is too far from the server's time.",
    )
    CLIENT_UNKNOWN = ("client_unknown", 401, "The token's client is not registered here.")
    CLIENT_DISABLED = ("client_disabled", 401, "The client is disabled.")
    TOKEN_MISSING = ("token_missing", 401, "A bearer token from POST /token is required.")
    TOKEN_MALFORMED = ("token_malformed", 401, "The bearer token is malformed.")
    TOKEN_ALGORITHM_NOT_ALLOWED = (
        "token_algorithm_not_allowed",
        401,
        "The token is not signed with RS256.",
    )
    TOKEN_KEY_UNKNOWN = (
        "token_key_unknown",
        401,
        "The token's key is not one of this server's signing keys.",
    )
    TOKEN_SIGNATURE_INVALID = (
        "token_signature_invalid",
        401,
        "The token's signature does not verify.",
    )
    TOKEN_EXPIRED = ("token_expired", 401, "The token has expired.")
    TOKEN_NOT_YET_VALID = (
        "token_not_yet_valid",
        401,
        "The token is issued (iat) or valid (nbf) only in the future.",
    )
    TOKEN_LIFETIME_TOO_LONG = (
        "token_lifetime_too_long",
        401,
        "The token lives longer than the longest valid_time this server grants.",
    )
    TOKEN_REVOKED = (
        "token_revoked",
        401,
        "The token was issued before its client's secret was rotated or the client was disabled.",
    )

    # 403: a valid caller, or a link holder, touching what is not theirs or no longer valid.
    PERMISSION_DENIED = ("permission_denied", 403, "This is not yours to access.")
    LINK_INVALID = ("link_invalid", 403, "The link is incomplete or altered.")
    LINK_EXPIRED = ("link_expired", 403, "The link has expired.")
    LINK_REVOKED = ("link_revoked", 403, "The link was revoked; ask the API for a fresh one.")

    # 404: nothing visible to this caller (existence is never revealed).
    NOT_FOUND = ("not_found", 404, "No such endpoint.")
    FILE_NOT_FOUND = ("file_not_found", 404, "No such file.")
    CLIENT_NOT_FOUND = ("client_not_found", 404, "No such client.")

    # 405: the path exists, the method does not.
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405, "This method is not allowed here.")

    # 408: the connection layer gave up waiting for the request (api/connections.py).
    REQUEST_TIMEOUT = (
        "request_timeout",
        408,
        "The request did not arrive in time; the connection is closed.",
    )

    # 409: clashes with an earlier request.
    CONFLICT = ("conflict", 409, "The request clashes with an earlier one.")
    REQUEST_REPLAYED = (
        "request_replayed",
        409,
        "This Request-Id was already used for the same request; the first answer is repeated.",
    )
    REQUEST_ID_REUSED = (
        "request_id_reused",
        409,
        "The Request-Id was already used for a different request.",
    )
    REQUEST_IN_PROGRESS = (
        "request_in_progress",
        409,
        "A request with this Request-Id or Idempotency-Key is still being processed.",
    )
    IDEMPOTENCY_KEY_REUSED = (
        "idempotency_key_reused",
        409,
        "The Idempotency-Key was already used for a different upload.",
    )
    CLIENT_EXISTS = ("client_exists", 409, "The client id is already registered.")
    DUPLICATE_ID = ("duplicate_id", 409, "The file id or key is already taken.")
    FILE_ON_HOLD = (
        "file_on_hold",
        409,
        "The document is on legal hold; it cannot be deleted until the hold is released.",
    )
    DUPLICATE_KEY = ("duplicate_key", 409, "The storage key already holds a file.")
    NODE_ID_TAKEN = (
        "node_id_taken",
        409,
        "Another live node holds this node id (raised at start, never on the wire).",
    )

    # 413: over a size cap, enforced while the body streams in.
    FILE_TOO_LARGE = ("file_too_large", 413, "The file is over its size cap.", FETCHED)
    BODY_TOO_LARGE = ("body_too_large", 413, "The request body is over its size cap.")

    # 415: the bytes are not a type the category accepts, or do not parse as that type.
    UNSUPPORTED_TYPE = (
        "unsupported_type",
        415,
        "The file is not a type berkas accepts.",
        FETCHED,
    )
    TYPE_NOT_ALLOWED = (
        "type_not_allowed",
        415,
        "The file's type is not accepted for this category.",
        FETCHED,
    )
    IMAGE_TOO_LARGE = ("image_too_large", 415, "The image has too many pixels.", FETCHED)
    IMAGE_TOO_SMALL = ("image_too_small", 415, "The image is too small.", FETCHED)
    IMAGE_TRUNCATED = ("image_truncated", 415, "The image ends early.", FETCHED)
    IMAGE_CORRUPT = ("image_corrupt", 415, "The image data does not decode.", FETCHED)
    PDF_CORRUPT = ("pdf_corrupt", 415, "The PDF does not parse or has no pages.", FETCHED)
    PDF_ENCRYPTED = ("pdf_encrypted", 415, "The PDF is encrypted.", FETCHED)
    PDF_TOO_COMPLEX = ("pdf_too_complex", 415, "The PDF has too many objects to inspect.", FETCHED)
    PDF_ACTIVE_CONTENT = (
        "pdf_active_content",
        415,
        "The PDF has JavaScript, launch, submit-form or other active content.",
        FETCHED,
    )
    PDF_EMBEDDED_FILE = ("pdf_embedded_file", 415, "The PDF carries an embedded file.", FETCHED)
    TRAILING_DATA = (
        "trailing_data",
        415,
        "The file has data after its end (JPEG EOI, PNG IEND, PDF %%EOF) beyond padding.",
        FETCHED,
    )
    EMBEDDED_ARCHIVE = (
        "embedded_archive",
        415,
        "The file is also a ZIP archive (a polyglot).",
        FETCHED,
    )

    # 422: fetching file_url was refused or failed (docs/design.md 4); each cause has its own code.
    FETCH_FAILED = ("fetch_failed", 422, "file_url could not be fetched.")
    URL_INVALID = ("url_invalid", 422, "file_url is not a valid URL.")
    URL_SCHEME_NOT_ALLOWED = (
        "url_scheme_not_allowed",
        422,
        "file_url must start with http:// or https://.",
    )
    URL_PORT_NOT_ALLOWED = ("url_port_not_allowed", 422, "file_url names a port not allowed.")
    URL_CREDENTIALS_NOT_ALLOWED = (
        "url_credentials_not_allowed",
        422,
        "file_url contains credentials.",
    )
    ADDRESS_NOT_ALLOWED = (
        "address_not_allowed",
        422,
        "file_url leads to a non-public address.",
    )
    DNS_FAILED = ("dns_failed", 422, "file_url's host does not resolve.")
    REDIRECT_NOT_ALLOWED = (
        "redirect_not_allowed",
        422,
        "file_url redirected from https to http.",
    )
    TOO_MANY_REDIRECTS = ("too_many_redirects", 422, "file_url redirected too many times.")
    FETCH_TIMEOUT = ("fetch_timeout", 422, "file_url did not answer in time.")

    # 431: a request head larger than the connection layer reads (api/connections.py).
    HEADERS_TOO_LARGE = (
        "headers_too_large",
        431,
        "The request line and headers are too large.",
    )

    # 429: a limit of README "Limits"; Retry-After (seconds) says when to try again.
    RATE_LIMITED = (
        "rate_limited",
        429,
        "Too many requests from this client; retry after the Retry-After seconds.",
    )
    UPLOAD_RATE_LIMITED = (
        "upload_rate_limited",
        429,
        "Too many uploads from this client; retry after the Retry-After seconds.",
    )
    TOO_MANY_UPLOADS = (
        "too_many_uploads",
        429,
        "This node has as many uploads in progress as it takes; retry shortly.",
    )
    FETCH_BUDGET_EXHAUSTED = (
        "fetch_budget_exhausted",
        429,
        "Too many of this client's file_url fetches were refused; send the file, or wait.",
    )

    # 500, 503 and 507: the server failed; never with a stack trace.
    API_ERROR = ("api_error", 500, "The server failed to handle this request.")
    INTERNAL_ERROR = ("internal_error", 500, "The server failed to handle this request.")
    FILE_UNREADABLE = (
        "file_unreadable",
        500,
        "The stored file fails its integrity check or its key cannot be opened; nothing "
        "was served. The operator must look.",
    )
    SERVICE_UNAVAILABLE = (
        "service_unavailable",
        503,
        "A dependency is unreachable; try again later.",
    )
    DATABASE_UNAVAILABLE = (
        "database_unavailable",
        503,
        "The metadata database is unreachable; try again later.",
    )
    STORAGE_UNAVAILABLE = (
        "storage_unavailable",
        503,
        "File storage is unreachable; try again later.",
    )
    # 507 (RFC 4918 section 11.5): the disk under the spool, blobs or SQLite file is full.
    INSUFFICIENT_STORAGE = (
        "insufficient_storage",
        507,
        "The server's storage is full; the request was not carried out. Try again later.",
    )
    SERVER_BUSY = (
        "server_busy",
        503,
        "This node has as many connections open as it serves; retry shortly.",
    )
    ID_ALLOCATION_FAILED = (
        "id_allocation_failed",
        503,
        "No unique file id could be allocated; retry the upload.",
    )

    @property
    def error_type(self) -> ErrorType:
        """The envelope's ``type`` for this code (the same when it is a fetch refusal)."""
        return _TYPE_OF_STATUS[self.status]

    def status_for(self, *, fetched: bool) -> int:
        """The HTTP status: ``status``, or 422 when it refuses a ``file_url`` fetch."""
        return FETCH_REFUSAL_STATUS if fetched else self.status


def markdown() -> str:
    """The README's table of every code (README "Error codes" under "The API")."""
    lines = ["| code | status | type | meaning |", "|---|---|---|---|"]
    for code in Code:
        status = str(code.status)
        if code.fetch_refusal and code.status != FETCH_REFUSAL_STATUS:
            status += f" ({FETCH_REFUSAL_STATUS} for `file_url`)"
        lines.append(f"| `{code.value}` | {status} | `{code.error_type}` | {code.message} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m berkas.core.codes --markdown``: print the README's table."""
    parser = argparse.ArgumentParser(
        prog="python -m berkas.core.codes", description="berkas's error-code catalogue"
    )
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.error("nothing to do; pass --markdown")
    print(markdown(), end="")


if __name__ == "__main__":
    main()
