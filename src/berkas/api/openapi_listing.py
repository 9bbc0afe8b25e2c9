"""The file list's OpenAPI extras (docs/design.md 3.5): its query parameters and an
example page; its error responses are with the others in api/openapi.py."""

from __future__ import annotations

from typing import Any

from berkas.api.schemas import ID_EXAMPLE
from berkas.core.catalogue import Category, DocumentCode
from berkas.core.listing import DEFAULT_LIMIT, MAX_LIMIT

# Stripe's cursor pagination and the filters.
LIST_QUERY: list[dict[str, Any]] = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Files per page, 1 to {MAX_LIMIT}.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        "example": 20,
    },
    {
        "name": "starting_after",
        "in": "query",
        "required": False,
        "description": "A file id: the page of older files after it (the last id of the "
        "previous page). Not with ending_before.",
        "schema": {"type": "string"},
        "example": ID_EXAMPLE,
    },
    {
        "name": "ending_before",
        "in": "query",
        "required": False,
        "description": "A file id: the page of newer files just before it (the first id "
        "of the current page), still newest first. Not with starting_after.",
        "schema": {"type": "string"},
        "example": ID_EXAMPLE,
    },
    {
        "name": "category",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": [category.value for category in Category]},
        "example": "DOCUMENT",
    },
    {
        "name": "code",
        "in": "query",
        "required": False,
        "description": "A document code (DOCUMENT files only).",
        "schema": {"type": "string", "enum": [code.value for code in DocumentCode]},
        "example": "KTP",
    },
    {
        "name": "created_gte",
        "in": "query",
        "required": False,
        "description": "Files created at or after this time: RFC 3339 with Z or an offset "
        "(as created_at shows it), or a date (its midnight UTC).",
        "schema": {"type": "string"},
        "example": "2026-12-01T00:00:00Z",
    },
    {
        "name": "created_lt",
        "in": "query",
        "required": False,
        "description": "Files created before this time (same forms as created_gte).",
        "schema": {"type": "string"},
        "example": "2026-12-08",
    },
]
LIST_EXAMPLE: dict[str, Any] = {
    "data": [
        {
            "id": "DCM-0001-1765097142123",
            "category": "DOCUMENT",
            "code": "KTP",
            "content_type": "image/jpeg",
            "size": 48213,
            "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "width": 1200,
            "height": 800,
            "created_at": "2026-12-07T08:45:42.123456Z",
            "retained_until": "2027-12-07T08:45:42.123456Z",
            "legal_hold": False,
            "metadata_removed": ["EXIF", "GPS"],
            "reencoded": False,
        }
    ],
    "has_more": True,
}
