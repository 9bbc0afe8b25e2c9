"""What the SDK returns: Token, UploadedFile, DryRunResult, FileInfo, FileEvents,
Requirements, parsed from the wire's JSON.

Only DOKU's fields are required (``token``; ``id``, ``link``, ``category``), so the SDK
also reads DOKU's own answers; berkas's extra fields are optional.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from berkas.client.errors import ServerError
from berkas.core.catalogue_types import MIB

T = TypeVar("T")


@dataclass(frozen=True, slots=True, repr=False)
class Token:
    """A bearer token from POST /token, with the times its (unverified) claims state.

    ``repr()`` and ``str()`` mask the token (only its last characters show), so a token
    logged or printed by accident is not a credential; read ``.token`` for the value.
    """

    token: str
    issued_at: datetime | None
    expires_at: datetime | None

    def __repr__(self) -> str:
        return (
            f"Token(token={mask(self.token)!r}, issued_at={self.issued_at!r}, "
            f"expires_at={self.expires_at!r})"
        )

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
    # What berkas stripped from an image before storing it (EXIF, GPS, XMP, ...).
    metadata_removed: tuple[str, ...] = ()
    # The image was re-encoded upright (its EXIF orientation applied): the stored bytes
    # and sha256 differ from what was sent.
    reencoded: bool = False
    # An earlier file of yours in this category with the same bytes (berkas, not DOKU).
    duplicate_of: str | None = None


@dataclass(frozen=True, slots=True)
class DryRunResult:
    """The answer to a dry run (``check``): what an upload would store; nothing was.

    Every check an upload makes ran (type, size cap, fetch, metadata stripping);
    ``size``, ``sha256`` and the dimensions are those of the document as it would be
    stored and served. There is no ``id`` or ``link``: nothing was kept. berkas only.
    """

    category: str
    code: str | None
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    # What would be stripped before storing (EXIF, GPS, XMP, ...).
    metadata_removed: tuple[str, ...] = ()
    # The image would be re-encoded upright: stored bytes and sha256 differ from the sent.
    reencoded: bool = False
    # An earlier file of yours in this category with the same bytes, as stored.
    duplicate_of: str | None = None


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
    retained_until: datetime | None = None
    legal_hold: bool = False
    metadata_removed: tuple[str, ...] = ()
    # Re-encoded upright at upload: the stored bytes differ from those sent.
    reencoded: bool = False


@dataclass(frozen=True, slots=True)
class FileEvent:
    """One entry of a file's audit trail (``uploaded``, ``link_opened``, ``deleted``...).

    ``ip`` is the caller as the server saw it through its proxies; ``detail`` is, for
    ``link_refused``, the refusal code and, for ``deleted``, who deleted it;
    ``request_id`` ties it to the server's access log; ``actor`` names the operator.
    """

    kind: str
    at: datetime
    ip: str | None
    user_agent: str | None
    detail: str | None
    request_id: str | None
    actor: str | None


@dataclass(frozen=True, slots=True)
class FileEvents:
    """A file's audit trail, oldest first (GET /file/{id}/events); kept after deletion."""

    id: str
    events: tuple[FileEvent, ...]


@dataclass(frozen=True, slots=True)
class RequirementField:
    """A text field a numbered document carries (``form``), e.g. KTP's 16-digit NO_KTP;
    ``min_size``/``max_size`` are in characters."""

    code: str
    name: str
    min_size: int | None
    max_size: int | None
    alpha: bool
    numeric: bool
    alpha_numeric: bool
    caption: str


@dataclass(frozen=True, slots=True)
class Requirement:
    """One file a merchant must provide, read from the requirements document.

    ``section`` is where it sits (``business.contact``); ``category`` is the upload's
    category (``DOCUMENT`` for a ``documents`` entry) and ``code`` its document code
    (None for a single-file category); ``max_size`` is in megabytes (MiB), as DOKU
    states it, and ``max_bytes`` the same in bytes.
    """

    section: str
    category: str
    code: str | None
    name: str
    extensions: tuple[str, ...]
    max_size: int
    form: tuple[RequirementField, ...] = ()

    @property
    def max_bytes(self) -> int:
        """``max_size`` in bytes (berkas reads DOKU's MB as MiB)."""
        return self.max_size * MIB


class Requirements(dict[str, Any]):
    """The answer to GET /file: still the wire's JSON object (``r["business"]...``, as
    before), plus the entries typed: ``entries`` and ``find(category, code)``."""

    @property
    def entries(self) -> tuple[Requirement, ...]:
        """Every requirement in the document, in the server's order."""
        return tuple(_walk(self, ()))

    def find(self, category: str, code: str | None = None) -> Requirement | None:
        """The requirement for an upload category (and code, for DOCUMENT), or None."""
        wanted = (str(category).upper(), None if code is None else str(code).upper())
        for entry in self.entries:
            if (entry.category, entry.code) == wanted:
                return entry
        return None


def _walk(node: dict[str, Any], path: tuple[str, ...]) -> Iterator[Requirement]:
    # DOKU's shape (docs/design.md 2.3): sections nest by owner; a single-file requirement sits
    # under its lower-cased category, documents in a "documents" array. Entries that do
    # not look like a requirement are skipped, so an answer DOKU extends still reads.
    for key, value in node.items():
        if key == "documents" and isinstance(value, list):
            for item in value:
                found = _requirement(item, ".".join(path), "DOCUMENT", document=True)
                if found is not None:
                    yield found
        elif isinstance(value, dict):
            found = _requirement(value, ".".join(path), key.upper(), document=False)
            if found is not None:
                yield found
            else:
                yield from _walk(value, (*path, key))


def _requirement(item: Any, section: str, category: str, *, document: bool) -> Requirement | None:
    if not isinstance(item, dict):
        return None
    code, name, extensions, max_size = (
        item.get(k) for k in ("code", "name", "extensions", "max_size")
    )
    if not (isinstance(code, str) and isinstance(extensions, list) and isinstance(max_size, int)):
        return None
    form = item.get("form")
    return Requirement(
        section=section,
        category=category,
        code=code if document else None,
        name=name if isinstance(name, str) else code,
        extensions=tuple(str(e) for e in extensions),
        max_size=max_size,
        form=tuple(_form_field(f) for f in form if isinstance(f, dict))
        if isinstance(form, list)
        else (),
    )


def _form_field(item: dict[str, Any]) -> RequirementField:
    return RequirementField(
        code=str(item.get("code", "")),
        name=str(item.get("name", "")),
        min_size=int(item["min_size"]) if _number(item.get("min_size")) else None,
        max_size=int(item["max_size"]) if _number(item.get("max_size")) else None,
        alpha=item.get("alpha") is True,
        numeric=item.get("numeric") is True,
        alpha_numeric=item.get("alpha_numeric") is True,
        caption=str(item.get("caption", "")),
    )


def _number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def mask(secret: str) -> str:
    """Show a secret by its last few characters only (``…k3Yq9w``)."""
    return f"…{secret[-6:]}" if len(secret) >= 24 else "…"


def parse_requirements(body: Any) -> Requirements:
    """Read the GET /file answer (docs/design.md 2.3): a JSON object, typed on demand."""
    return Requirements(parse_object(body))


def parse_token(body: Any) -> Token:
    """Read ``{"token": "<JWT>"}``; the claims are decoded, never verified.

    The SDK only needs ``iat``/``exp`` to know when to ask again; the server is the one
    that verifies tokens, and a partner holds no key that could.
    """
    token = _field(body, "token", str)
    claims = _claims(token)
    return Token(token=token, issued_at=_epoch(claims, "iat"), expires_at=_epoch(claims, "exp"))


def parse_uploaded(body: Any) -> UploadedFile:
    """Read the upload answer (docs/design.md 2.4)."""
    return UploadedFile(
        id=_field(body, "id", str),
        link=_field(body, "link", str),
        category=_field(body, "category", str),
        code=_optional(body, "code", str),
        content_type=_optional(body, "content_type", str),
        size=_optional(body, "size", int),
        sha256=_optional(body, "sha256", str),
        link_expires_at=_time(_optional(body, "link_expires_at", str)),
        metadata_removed=_names(body, "metadata_removed"),
        reencoded=_flag(body, "reencoded"),
        duplicate_of=_optional(body, "duplicate_of", str),
    )


def parse_dry_run(body: Any) -> DryRunResult:
    """Read the answer to ``Berkas-Dry-Run: true`` (berkas only).

    ``"dry_run": true`` is required: a server that does not know the header (DOKU, a
    berkas before it) answers a real upload instead, and that must not pass for a check.
    """
    if not isinstance(body, dict) or body.get("dry_run") is not True:
        stored = body.get("id") if isinstance(body, dict) else None
        raise ServerError(
            200,
            "invalid_response",
            'the server\'s answer is not a dry run (no "dry_run": true); '
            + (
                f"it stored the file as {stored}, so it does not support Berkas-Dry-Run"
                if isinstance(stored, str)
                else "is base_url a berkas server?"
            ),
            "api_error",
        )
    return DryRunResult(
        category=_field(body, "category", str),
        code=_optional(body, "code", str),
        content_type=_field(body, "content_type", str),
        size=_field(body, "size", int),
        sha256=_field(body, "sha256", str),
        width=_optional(body, "width", int),
        height=_optional(body, "height", int),
        metadata_removed=_names(body, "metadata_removed"),
        reencoded=_flag(body, "reencoded"),
        duplicate_of=_optional(body, "duplicate_of", str),
    )


def parse_file_info(body: Any) -> FileInfo:
    """Read the GET /file/{id} answer (docs/design.md 3.1)."""
    return FileInfo(
        **stored_fields(body),
        link=_field(body, "link", str),
        link_expires_at=_time(_optional(body, "link_expires_at", str)),
    )


def stored_fields(body: Any) -> dict[str, Any]:
    """The fields of a stored file that GET /file/{id} and each item of GET /files
    share (everything but the link), read and checked."""
    return {
        "id": _field(body, "id", str),
        "category": _field(body, "category", str),
        "code": _optional(body, "code", str),
        "content_type": _field(body, "content_type", str),
        "size": _field(body, "size", int),
        "sha256": _field(body, "sha256", str),
        "width": _optional(body, "width", int),
        "height": _optional(body, "height", int),
        "created_at": _timestamp(_field(body, "created_at", str)),
        "retained_until": _time(_optional(body, "retained_until", str)),
        "legal_hold": _flag(body, "legal_hold"),
        "metadata_removed": _names(body, "metadata_removed"),
        "reencoded": _flag(body, "reencoded"),
    }


def parse_file_events(body: Any) -> FileEvents:
    """Read the GET /file/{id}/events answer (docs/design.md 6.3)."""
    items = _field(body, "events", list)
    return FileEvents(
        id=_field(body, "id", str),
        events=tuple(
            FileEvent(
                kind=_field(item, "kind", str),
                at=_timestamp(_field(item, "at", str)),
                ip=_optional(item, "ip", str),
                user_agent=_optional(item, "user_agent", str),
                detail=_optional(item, "detail", str),
                request_id=_optional(item, "request_id", str),
                actor=_optional(item, "actor", str),
            )
            for item in items
        ),
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


def _flag(body: Any, name: str) -> bool:
    value = body.get(name, False) if isinstance(body, dict) else False
    if not isinstance(value, bool):
        raise _bad(name)
    return value


def _names(body: Any, name: str) -> tuple[str, ...]:
    # Absent (a DOKU server, an older berkas): nothing was said to be removed.
    value = _optional(body, name, list) or []
    if not all(isinstance(item, str) for item in value):
        raise _bad(name)
    return tuple(value)


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
