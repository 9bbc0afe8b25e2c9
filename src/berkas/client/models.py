"""What the SDK returns: Token, UploadedFile, FileInfo, parsed from the wire's JSON.

Only DOKU's fields are required (``token``; ``id``, ``link``, ``category``), so the SDK
also reads DOKU's own answers; berkas's extra fields are optional.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from berkas.client.errors import ServerError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token from POST /token, with the times its (unverified) claims state."""

    token: str
    issued_at: datetime | None
    expires_at: datetime | None

    @property
    def lifetime(self) -> timedelta | None:
        """``exp - iat``: how long the server meant the token to live."""
        if self.issued_at is None or self.expires_at is None:
            return None
        return self.expires_at - self.issued_at

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self.token}"


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """The answer to an upload: keep ``id``; ``link`` opens the bytes for 60 minutes."""

    id: str
    link: str
    category: str
    code: str | None = None
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None
    link_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A stored file's metadata (GET /file/{id}) and a fresh 60-minute ``link``."""

    id: str
    category: str
    code: str | None
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    created_at: datetime
    link: str
    link_expires_at: datetime | None


def parse_token(body: Any) -> Token:
    """Read ``{"token": "<JWT>"}``; the claims are decoded, never verified.

    The SDK only needs ``iat``/``exp`` to know when to ask again; the server is the one
    that verifies tokens, and a partner holds no key that could.
    """
    token = _field(body, "token", str)
    claims = _claims(token)
    return Token(token=token, issued_at=_epoch(claims, "iat"), expires_at=_epoch(claims, "exp"))


def parse_uploaded(body: Any) -> UploadedFile:
    """Read the upload answer (DESIGN 2.4)."""
    return UploadedFile(
        id=_field(body, "id", str),
        link=_field(body, "link", str),
        category=_field(body, "category", str),
        code=_optional(body, "code", str),
        content_type=_optional(body, "content_type", str),
        size=_optional(body, "size", int),
        sha256=_optional(body, "sha256", str),
        link_expires_at=_time(_optional(body, "link_expires_at", str)),
    )


def parse_file_info(body: Any) -> FileInfo:
    """Read the GET /file/{id} answer (DESIGN 3)."""
    return FileInfo(
        id=_field(body, "id", str),
        category=_field(body, "category", str),
        code=_optional(body, "code", str),
        content_type=_field(body, "content_type", str),
        size=_field(body, "size", int),
        sha256=_field(body, "sha256", str),
        width=_optional(body, "width", int),
        height=_optional(body, "height", int),
        created_at=_timestamp(_field(body, "created_at", str)),
        link=_field(body, "link", str),
        link_expires_at=_time(_optional(body, "link_expires_at", str)),
    )


def parse_object(body: Any) -> dict[str, Any]:
    """Check that an answer is a JSON object (the requirements document)."""
    if not isinstance(body, dict):
        raise ServerError(200, "invalid_response", "expected a JSON object", "api_error")
    return body


def _claims(token: str) -> dict[str, Any]:
    # A JWT is header.payload.signature, each base64url without padding (RFC 7519 s3,
    # RFC 7515 s2); the payload is a JSON object. Anything else: no claims, no caching.
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(segment))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _epoch(claims: dict[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def _field(body: Any, name: str, kind: type[T]) -> T:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _bad(name)
    return value


def _optional(body: Any, name: str, kind: type[T]) -> T | None:
    if not isinstance(body, dict) or body.get(name) is None:
        return None
    return _field(body, name, kind)


def _time(value: str | None) -> datetime | None:
    return None if value is None else _timestamp(value)


def _timestamp(value: str) -> datetime:
    try:
        # fromisoformat reads "Z" from Python 3.11 on.
        return datetime.fromisoformat(value)
    except ValueError:
        raise _bad("a timestamp") from None


def _bad(name: str) -> ServerError:
    return ServerError(
        200,
        "invalid_response",
        f"the server's answer has no valid {name!r}; is base_url a berkas or DOKU server?",
        "api_error",
    )
