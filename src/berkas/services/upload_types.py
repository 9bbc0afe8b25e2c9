"""The values an upload passes around: the fields and the target they name, the body as it
goes to the store, and the answers (``UploadResult``, ``DryRun``) the use case returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from berkas.core import content
from berkas.core.catalogue import Category, DocumentCode
from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest
from berkas.core.models import StoredFile
from berkas.services.links import IssuedLink

# The catalogue's upper-case extensions (DOKU's wire form) and the kinds they denote.
KIND_OF_EXTENSION = {
    "JPG": content.Kind.JPEG,
    "JPEG": content.Kind.JPEG,
    "PNG": content.Kind.PNG,
    "PDF": content.Kind.PDF,
}

UploadFields = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """The validated ``category``/``code`` pair and what follows from its requirement."""

    category: Category
    code: DocumentCode | None
    max_bytes: int
    label: str
    kinds: frozenset[content.Kind]


@dataclass(frozen=True, slots=True)
class Body:
    """What goes to the blob store: the spool itself, or what was derived from it.

    ``size`` and ``sha256`` are those of the document as stored and served (after
    stripping), not of the envelope the store may hold; ``data_key`` is set when
    ``path`` is that envelope.
    """

    path: Path
    size: int
    sha256: str
    data_key: bytes | None = None
    removed: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class DryRun:
    """What an upload would store (``Berkas-Dry-Run: true``): every check ran, nothing
    was kept. ``size``, ``sha256`` and the dimensions are those of the document as it
    would be stored and served, after stripping ``metadata_removed``."""

    category: str
    code: str | None
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    metadata_removed: tuple[str, ...]
    duplicate_of: str | None


@dataclass(frozen=True, slots=True)
class UploadResult:
    """A stored file and a fresh link; ``replayed`` when a retry got the first upload."""

    stored: StoredFile
    link: IssuedLink
    replayed: bool = False
    # An earlier file of this partner in the same category with the same bytes (as
    # stored, after stripping): the upload is stored all the same, the partner told.
    duplicate_of: str | None = None


def file_url(fields: UploadFields) -> str | None:
    """The ``file_url`` field, None when absent or blank (as an unfilled form input)."""
    return (fields.get("file_url") or "").strip() or None


def file_xor_url(what: str) -> InvalidRequest:
    """The refusal of a body with both ``file`` and ``file_url``, or neither (``what``)."""
    return InvalidRequest(
        f"send exactly one of file (the document) and file_url (a URL to fetch); {what}",
        code=Code.FILE_OR_URL_REQUIRED,
    )
