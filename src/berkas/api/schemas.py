"""Wire shapes: the request and response models the routes speak (their OpenAPI
tables, bodies and examples are in api/openapi.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from berkas.core.models import FileEvent, StoredFile
from berkas.core.wire import iso8601
from berkas.services.files import FileView
from berkas.services.listing import FilePage
from berkas.services.stripping import REENCODED
from berkas.services.upload_types import DryRun, UploadResult

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
    sha256: str = Field(description="SHA-256 of the document as stored and served")
    link_expires_at: str
    metadata_removed: list[str] = Field(
        default_factory=list,
        description="What was stripped from the image before it was stored: EXIF, GPS, "
        "XMP, IPTC, COMMENT, TEXT, TIME, OTHER_APP, and ORIENTATION when the EXIF "
        'orientation was applied by re-encoding (README "Privacy")',
        examples=[["EXIF", "GPS"]],
    )
    reencoded: bool = Field(
        default=False,
        description="True when the image was re-encoded (to turn it upright per its EXIF "
        "orientation): the stored bytes and sha256 differ from what was sent",
    )
    duplicate_of: str | None = Field(
        default=None,
        description="The id of an earlier file of yours in this category with the same "
        "bytes; this upload was stored all the same",
    )

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
            metadata_removed=list(stored.metadata_removed),
            reencoded=REENCODED in stored.metadata_removed,
            duplicate_of=result.duplicate_of,
        )


class DryRunResponse(BaseModel):
    """The answer to ``Berkas-Dry-Run: true``: what would be stored; nothing was."""

    dry_run: Literal[True] = True
    category: str
    code: str | None = None
    content_type: str
    size: int = Field(description="Bytes as they would be stored and served")
    sha256: str
    width: int | None = None
    height: int | None = None
    metadata_removed: list[str] = Field(
        default_factory=list, description="What would be stripped before storing"
    )
    reencoded: bool = Field(
        default=False, description="True when the image would be re-encoded upright"
    )
    duplicate_of: str | None = None

    @classmethod
    def of(cls, result: DryRun) -> DryRunResponse:
        return cls(
            category=result.category,
            code=result.code,
            content_type=result.content_type,
            size=result.size,
            sha256=result.sha256,
            width=result.width,
            height=result.height,
            metadata_removed=list(result.metadata_removed),
            reencoded=REENCODED in result.metadata_removed,
            duplicate_of=result.duplicate_of,
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
    retained_until: str | None = Field(
        default=None,
        description="When housekeeping removes the document (null: kept until deleted); "
        "suspended while legal_hold is true",
    )
    legal_hold: bool = False
    metadata_removed: list[str] = Field(
        default_factory=list, description="What was stripped from the image at upload"
    )
    reencoded: bool = Field(
        default=False, description="True when the image was re-encoded upright at upload"
    )

    @classmethod
    def of(cls, view: FileView) -> FileMetadata:
        return cls(
            **_stored_fields(view.stored),
            link=view.link.url,
            link_expires_at=iso8601(view.link.expires_at),
        )


class FileSummary(BaseModel):
    """One file of a list: what GET /file/{id} answers, without a link (listing issues
    none; ask GET /file/{id} for one)."""

    id: str = Field(examples=[ID_EXAMPLE])
    category: str = Field(examples=["DOCUMENT"])
    code: str | None = Field(examples=["KTP"])
    content_type: str = Field(examples=["image/jpeg"])
    size: int = Field(examples=[48213])
    sha256: str
    width: int | None
    height: int | None
    created_at: str = Field(examples=["2026-12-07T08:45:42.123456Z"])
    retained_until: str | None = None
    legal_hold: bool = False
    metadata_removed: list[str] = Field(default_factory=list)
    reencoded: bool = False

    @classmethod
    def of(cls, stored: StoredFile) -> FileSummary:
        return cls(**_stored_fields(stored))


def _stored_fields(stored: StoredFile) -> dict[str, Any]:
    """What GET /file/{id} and each item of GET /files say of a stored file alike."""
    return {
        "id": stored.id,
        "category": stored.category,
        "code": stored.code,
        "content_type": stored.content_type,
        "size": stored.size,
        "sha256": stored.sha256,
        "width": stored.width,
        "height": stored.height,
        "created_at": iso8601(stored.created_at),
        "retained_until": None if stored.retained_until is None else iso8601(stored.retained_until),
        "legal_hold": stored.legal_hold,
        "metadata_removed": list(stored.metadata_removed),
        "reencoded": REENCODED in stored.metadata_removed,
    }


class FileList(BaseModel):
    """A page of the caller's files, newest first (docs/design.md 3.5)."""

    data: list[FileSummary]
    has_more: bool = Field(
        description="True when the direction paged holds more files: pass the last id as "
        "starting_after (or, paging with ending_before, the first id as ending_before)"
    )

    @classmethod
    def of(cls, page: FilePage) -> FileList:
        return cls(data=[FileSummary.of(stored) for stored in page.files], has_more=page.has_more)


class Event(BaseModel):
    kind: str = Field(examples=["link_opened"])
    at: str
    ip: str | None = Field(description="The caller as seen through the configured proxies")
    user_agent: str | None
    detail: str | None = Field(
        description="For link_refused the refusal code; for deleted who deleted it"
    )
    request_id: str | None = Field(
        description="The request id of the call behind it, as its access-log line and its "
        "answer's Request-Id header carry it (null for housekeeping)"
    )
    actor: str | None = Field(
        description="For the operator's events, who acted (the OS user or --actor)"
    )


class FileEvents(BaseModel):
    """The file's audit trail, oldest first; kept after the file is deleted."""

    id: str = Field(examples=[ID_EXAMPLE])
    events: list[Event]

    @classmethod
    def of(cls, file_id: str, events: Sequence[FileEvent]) -> FileEvents:
        return cls(
            id=file_id,
            events=[
                Event(
                    kind=e.kind.value,
                    at=iso8601(e.at),
                    ip=e.ip,
                    user_agent=e.user_agent,
                    detail=e.detail,
                    request_id=e.request_id,
                    actor=e.actor,
                )
                for e in events
            ],
        )


class ErrorDetail(BaseModel):
    code: str = Field(examples=["category_invalid"])
    message: str
    type: str = Field(examples=["invalid_request_error"])


class ErrorResponse(BaseModel):
    error: ErrorDetail
