"""The OpenAPI extras the routes declare at /docs: signed headers, request bodies and
queries, security schemes, examples, and each operation's error responses."""

from __future__ import annotations

from typing import Any

from berkas.api.schemas import ErrorResponse, TokenRequest
from berkas.core.catalogue import BusinessType, Category
from berkas.core.codes import Code

SIGNED_HEADERS: list[dict[str, Any]] = [
    {
        "name": "Client-Id",
        "in": "header",
        "required": True,
        "schema": {"type": "string"},
        "example": "BRN-0001-10791114622547",
    },
    {
        "name": "Request-Id",
        "in": "header",
        "required": True,
        "description": "Unique per request (1..128 chars); a repeat gets the first response "
        "again with HTTP 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    {
        "name": "Request-Timestamp",
        "in": "header",
        "required": True,
        "description": "UTC, YYYY-MM-DDTHH:MM:SSZ, within the server's window.",
        "schema": {"type": "string", "example": "2020-08-11T08:45:42Z"},
    },
    {
        "name": "Signature",
        "in": "header",
        "required": True,
        "description": "HMACSHA256=base64(HMAC-SHA256(secret, Client-Id:..\\nRequest-Id:..\\n"
        "Request-Timestamp:..\\nRequest-Target:<path>[\\nDigest:base64(sha256(body))])).",
        "schema": {"type": "string"},
    },
]

# What each status means to a caller; the codes under it are listed per operation.
STATUS_MEANING: dict[int, str] = {
    400: "Bad input (the message names the field)",
    401: "Authentication failed",
    403: "A bad, incomplete or expired link",
    404: "Not found (or not yours: another partner's file is not found either)",
    409: "A Request-Id or Idempotency-Key already used",
    413: "Too large",
    415: "Unsupported content",
    422: "The file_url fetch was refused or failed",
    429: "Over a limit; Retry-After says how many seconds to wait",
    500: "The stored file fails its integrity check; nothing was served",
    503: "The database or the store is unreachable; retry later",
    507: "No space left to store the upload; retry later",
}


def error_responses(*codes: Code) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` for the errors an operation answers: one entry per status
    its ``codes`` take (a refused ``file_url`` fetch also 422), each naming its codes and
    showing each code's envelope as an example."""
    by_status: dict[int, list[Code]] = {}
    replays = Code.REQUEST_REPLAYED in codes
    for listed in dict.fromkeys(c for c in codes if c is not Code.REQUEST_REPLAYED):
        statuses = {listed.status, listed.status_for(fetched=listed.fetch_refusal)}
        for status in sorted(statuses):
            by_status.setdefault(status, []).append(listed)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        members = by_status[status]
        names = ", ".join(f"`{code.value}`" for code in members)
        examples = {}
        for code in members:
            error: dict[str, str] = {
                "code": code.value,
                "message": code.message,
                "type": code.error_type.value,
            }
            if status >= 500:
                error["request_id"] = "4f1c2a9e-5b7d-4c1e-9a3f-0d2b6e8c7a51"
            examples[code.value] = {"summary": code.message, "value": {"error": error}}
        responses[status] = {
            "model": ErrorResponse,
            "description": f"{STATUS_MEANING[status]}. Codes: {names}.",
            "content": {"application/json": {"examples": examples}},
        }
    if replays:
        # docs/design.md 2.1 (DOKU's rule): the same signed request again is answered with the
        # first answer's body, whatever it was, under 409; only a different or unfinished
        # request under a used Request-Id gets an error of its own.
        conflict = responses[409]
        del conflict["model"]
        names = ", ".join(f"`{code.value}`" for code in by_status[409])
        conflict["description"] = (
            "The Request-Id was used before. The same request again gets the first "
            "answer's body (its token, requirements or error) with 409, DOKU's rule; "
            f"otherwise an error. Codes: {names}."
        )
        conflict["content"]["application/json"]["schema"] = {
            "anyOf": [
                {"$ref": "#/components/schemas/ErrorResponse"},
                {"type": "object", "description": "The first answer's body, again."},
            ]
        }
    return responses


# A signed request (docs/design.md 2.1): its headers and client, its Request-Id used once, the
# client's request rate, and the database that holds clients and Request-Ids.
_SIGNED = (
    Code.HEADER_MISSING,
    Code.INVALID_REQUEST_ID,
    Code.TIMESTAMP_INVALID,
    Code.TIMESTAMP_OUT_OF_WINDOW,
    Code.SIGNATURE_INVALID,
    Code.CLIENT_UNKNOWN,
    Code.CLIENT_DISABLED,
    Code.REQUEST_REPLAYED,
    Code.REQUEST_ID_REUSED,
    Code.REQUEST_IN_PROGRESS,
    Code.RATE_LIMITED,
    Code.DATABASE_UNAVAILABLE,
)
# A bearer request (docs/design.md 2.2): the token, its client, the client's request rate.
_BEARER = (
    Code.TOKEN_MISSING,
    Code.TOKEN_MALFORMED,
    Code.TOKEN_ALGORITHM_NOT_ALLOWED,
    Code.TOKEN_KEY_UNKNOWN,
    Code.TOKEN_SIGNATURE_INVALID,
    Code.TOKEN_EXPIRED,
    Code.TOKEN_NOT_YET_VALID,
    Code.TOKEN_LIFETIME_TOO_LONG,
    Code.TOKEN_REVOKED,
    Code.CLIENT_UNKNOWN,
    Code.CLIENT_DISABLED,
    Code.RATE_LIMITED,
    Code.DATABASE_UNAVAILABLE,
)
TOKEN_ERRORS = error_responses(
    *_SIGNED,
    Code.BODY_TOO_LARGE,
    Code.INVALID_JSON,
    Code.GRANT_TYPE_INVALID,
    Code.INVALID_VALID_TIME,
)
REQUIREMENTS_ERRORS = error_responses(
    *_SIGNED, Code.PARAMETER_MISSING, Code.PARAMETER_REPEATED, Code.INVALID_PARAMETER
)
UPLOAD_ERRORS = error_responses(
    *_BEARER,
    # the body: multipart framing, fields, size
    Code.MULTIPART_REQUIRED,
    Code.MULTIPART_MALFORMED,
    Code.MULTIPART_TOO_MANY_PARTS,
    Code.UNKNOWN_FIELD,
    Code.MULTIPLE_FILES,
    Code.DUPLICATE_FIELD,
    Code.FIELD_TOO_LONG,
    Code.FIELD_INVALID,
    Code.BODY_TOO_LARGE,
    Code.FILE_TOO_LARGE,
    Code.FILE_OR_URL_REQUIRED,
    Code.URL_UPLOAD_DISABLED,
    # what the file is for (the catalogue)
    Code.CATEGORY_MISSING,
    Code.CATEGORY_INVALID,
    Code.CODE_MISSING,
    Code.CODE_INVALID,
    # what the bytes are
    Code.EMPTY_FILE,
    Code.UNSUPPORTED_TYPE,
    Code.TYPE_NOT_ALLOWED,
    Code.IMAGE_TOO_LARGE,
    Code.IMAGE_TOO_SMALL,
    Code.IMAGE_TRUNCATED,
    Code.IMAGE_CORRUPT,
    Code.TRAILING_DATA,
    Code.EMBEDDED_ARCHIVE,
    Code.PDF_CORRUPT,
    Code.PDF_ENCRYPTED,
    Code.PDF_TOO_COMPLEX,
    Code.PDF_ACTIVE_CONTENT,
    Code.PDF_EMBEDDED_FILE,
    # a file_url fetch (docs/design.md 4)
    Code.URL_INVALID,
    Code.URL_SCHEME_NOT_ALLOWED,
    Code.URL_PORT_NOT_ALLOWED,
    Code.URL_CREDENTIALS_NOT_ALLOWED,
    Code.ADDRESS_NOT_ALLOWED,
    Code.DNS_FAILED,
    Code.REDIRECT_NOT_ALLOWED,
    Code.TOO_MANY_REDIRECTS,
    Code.FETCH_TIMEOUT,
    Code.FETCH_FAILED,
    # a retry (docs/design.md 3.2)
    Code.INVALID_IDEMPOTENCY_KEY,
    Code.IDEMPOTENCY_KEY_REUSED,
    Code.INVALID_DRY_RUN,
    Code.REQUEST_IN_PROGRESS,
    Code.FILE_NOT_FOUND,  # a replayed key whose file was deleted since
    # the node's own limits, and where the bytes go
    Code.UPLOAD_RATE_LIMITED,
    Code.TOO_MANY_UPLOADS,
    Code.FETCH_BUDGET_EXHAUSTED,
    Code.STORAGE_UNAVAILABLE,
    Code.ID_ALLOCATION_FAILED,
    Code.INSUFFICIENT_STORAGE,
)
DESCRIBE_ERRORS = error_responses(*_BEARER, Code.FILE_NOT_FOUND)
LIST_ERRORS = error_responses(
    *_BEARER,
    Code.UNKNOWN_PARAMETER,
    Code.PARAMETER_REPEATED,
    Code.LIMIT_INVALID,
    Code.CURSOR_CONFLICT,
    Code.CURSOR_INVALID,
    Code.CATEGORY_INVALID,
    Code.CODE_INVALID,
    Code.CREATED_INVALID,
)
DELETE_RESPONSES: dict[int | str, dict[str, Any]] = {
    204: {
        "description": "Deleted: the row, the bytes and every link are gone (also when this "
        "partner had already deleted it: DELETE is idempotent)"
    },
    # A document on legal hold is deleted by nobody until the operator releases it.
    **error_responses(*_BEARER, Code.FILE_NOT_FOUND, Code.FILE_ON_HOLD),
}
LINK_ERRORS = error_responses(
    Code.LINK_INVALID,
    Code.LINK_EXPIRED,
    Code.LINK_REVOKED,
    Code.FILE_NOT_FOUND,
    # An encrypted document whose object was altered, or whose key does not open here.
    Code.FILE_UNREADABLE,
    Code.DATABASE_UNAVAILABLE,
    Code.STORAGE_UNAVAILABLE,
)

# The ``bearer`` scheme the partner routes name in their ``security`` (docs/design.md 2.2, 2.4).
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "RS256 token from POST /token.",
    }
}

# A link carries its own credential in the query (docs/design.md 2.4); the bytes are the stored
# file's own type, never JSON.
LINK_OPENAPI: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": True, "schema": {"type": "string"}}
        for name in ("expires", "signature")
    ],
}
LINK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The exact stored bytes.",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("image/jpeg", "image/png", "application/pdf")
        },
    },
    **LINK_ERRORS,
}

UPLOAD_BODY: dict[str, Any] = {
    # docs/design.md 3.2: either header makes a retry safe (same key, same content: the first file).
    "parameters": [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": "Optional retry key: the same key with the same content answers "
            "with the first upload's file.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        }
        for name in ("Idempotency-Key", "Request-Id")
    ]
    + [
        {
            "name": "Berkas-Dry-Run",
            "in": "header",
            "required": False,
            "description": "true: run every check and answer what would be stored (type, "
            "size, sha256, dimensions, metadata to strip), storing nothing.",
            "schema": {"type": "string", "enum": ["true", "false"]},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["category"],
                    "properties": {
                        "category": {
                            "type": "string",
                            "enum": [category.value for category in Category],
                        },
                        "code": {
                            "type": "string",
                            "description": "Required when category is DOCUMENT (e.g. KTP).",
                        },
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "JPEG or PNG (PDF for DOCUMENT, SERVICE_AGREEMENT, "
                            "BANK_ACCOUNT); at most the requirement's max_size.",
                        },
                        "file_url": {
                            "description": "http(s) URL the server fetches instead of file; "
                            "blank counts as absent (as an unfilled form input sends it).",
                            "anyOf": [
                                {"type": "string", "format": "uri"},
                                {"type": "string", "pattern": r"^\s*$"},
                            ],
                        },
                    },
                }
            }
        },
    },
}

TOKEN_BODY: dict[str, Any] = {
    "parameters": SIGNED_HEADERS,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": TokenRequest.model_json_schema()}},
    },
}

REQUIREMENT_QUERY: list[dict[str, Any]] = [
    {
        "name": "businessType",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "enum": [kind.value for kind in BusinessType]},
    },
    {
        "name": "businessLegalEntity",
        "in": "query",
        "required": True,
        "schema": {"type": "string"},
        "example": "PERSEORANGAN",
    },
    {
        "name": "brandBusinessLine",
        "in": "query",
        "required": True,
        "schema": {"type": "string"},
        "example": "RETAIL",
    },
    {
        "name": "businessContactNationality",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "example": "ID",
    },
]

# DOKU's published answer for PERSONAL / PERSEORANGAN / RETAIL / ID (docs/design.md 2.3); a test
# checks that the packaged catalogue still gives exactly this.
_IMAGE = ["PNG", "JPG", "JPEG"]
REQUIREMENTS_EXAMPLE: dict[str, Any] = {
    "business": {
        "brand": {
            "photo_proof": {
                "code": "PHOTO_PROOF",
                "name": "Brand Photo Proof",
                "extensions": _IMAGE,
                "max_size": 15,
            }
        },
        "contact": {
            "documents": [
                {
                    "code": "KTP",
                    "name": "Kartu Tanda Penduduk",
                    "extensions": ["PDF", "JPG", "JPEG", "PNG"],
                    "max_size": 15,
                    "form": [
                        {
                            "code": "NO_KTP",
                            "name": "No. KTP (NIK)",
                            "min_size": 16,
                            "max_size": 16,
                            "alpha": False,
                            "numeric": True,
                            "alpha_numeric": False,
                            "caption": "Masukkan 16 digit nomor KTP Anda (NIK)",
                        }
                    ],
                }
            ],
            "owner_liveness": {
                "code": "OWNER_LIVENESS",
                "name": "Owner Liveness",
                "extensions": _IMAGE,
                "max_size": 15,
            },
        },
    }
}
