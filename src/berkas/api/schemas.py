"""Wire shapes, for responses and for the OpenAPI document at /docs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from berkas.core.catalogue import BusinessType, Category
from berkas.core.wire import iso8601
from berkas.services.files import FileView
from berkas.services.uploads import UploadResult

ID_EXAMPLE = "DCM-0001-1732700000000"


class TokenRequest(BaseModel):
    grant_type: Literal["client_credentials"]
    valid_time: str | None = Field(
        default=None, description="Minutes the token is valid, as a string.", examples=["360"]
    )


class TokenResponse(BaseModel):
    token: str = Field(description="RS256 JWT; send as Authorization: Bearer <token>.")


class UploadResponse(BaseModel):
    id: str = Field(pattern=r"^[A-Z]{3}-\d{4}-\d{13}$", examples=[ID_EXAMPLE])
    link: str = Field(description="Signed URL to the exact bytes, valid for 60 minutes.")
    category: str
    code: str | None = None
    content_type: str
    size: int
    sha256: str
    link_expires_at: str

    @classmethod
    def of(cls, result: UploadResult) -> UploadResponse:
        stored = result.stored
        return cls(
            id=stored.id,
            link=result.link.url,
            category=stored.category,
            code=stored.code,
            content_type=stored.content_type,
            size=stored.size,
            sha256=stored.sha256,
            link_expires_at=iso8601(result.link.expires_at),
        )


class FileMetadata(BaseModel):
    id: str = Field(examples=[ID_EXAMPLE])
    category: str
    code: str | None
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    created_at: str
    link: str
    link_expires_at: str

    @classmethod
    def of(cls, view: FileView) -> FileMetadata:
        stored = view.stored
        return cls(
            id=stored.id,
            category=stored.category,
            code=stored.code,
            content_type=stored.content_type,
            size=stored.size,
            sha256=stored.sha256,
            width=stored.width,
            height=stored.height,
            created_at=iso8601(stored.created_at),
            link=view.link.url,
            link_expires_at=iso8601(view.link.expires_at),
        )


class ErrorDetail(BaseModel):
    code: str = Field(examples=["category_invalid"])
    message: str
    type: str = Field(examples=["invalid_request_error"])


class ErrorResponse(BaseModel):
    error: ErrorDetail


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

ERRORS_OPENAPI: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "Bad input (the message names the field)",
        401: "Authentication failed",
        403: "Not yours, or a bad link",
        404: "Not found",
        409: "Request-Id replay",
        413: "Too large",
        415: "Unsupported content",
        422: "file_url fetch refused or failed",
        429: "Over a limit; Retry-After says how many seconds to wait",
    }.items()
}

# The ``bearer`` scheme the partner routes name in their ``security`` (DESIGN 2.2, 2.4).
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "RS256 token from POST /token.",
    }
}

# A link carries its own credential in the query (DESIGN 2.4); the bytes are the stored
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
    **{status: ERRORS_OPENAPI[status] for status in (403, 404)},
}

UPLOAD_BODY: dict[str, Any] = {
    # DESIGN 3: either header makes a retry safe (same key, same content: the first file).
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

# DOKU's published answer for PERSONAL / PERSEORANGAN / RETAIL / ID (DESIGN 2.3); a test
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
