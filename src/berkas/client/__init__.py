"""The partner SDK: ``BerkasClient`` (blocking) and ``AsyncBerkasClient`` over httpx.

Speaks DOKU's Partner file API (token, requirements, upload) plus berkas's extras (file
metadata, audit trail, deletion, link revocation, downloads, dry runs). Imports only
``berkas.core`` and httpx.
"""

from berkas.client.aio import AsyncBerkasClient
from berkas.client.errors import (
    AuthenticationError,
    BerkasAPIError,
    BerkasClientError,
    ChecksumMismatch,
    ConfigurationError,
    ConflictError,
    ConnectionFailed,
    FetchError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplayedError,
    ServerError,
    TooLargeError,
    UnsupportedContentError,
)
from berkas.client.flow import RetryPolicy
from berkas.client.listing import FilePage, ListedFile
from berkas.client.models import (
    DryRunResult,
    FileEvent,
    FileEvents,
    FileInfo,
    Requirement,
    RequirementField,
    Requirements,
    Token,
    UploadedFile,
)
from berkas.client.streams import FileInput, OnProgress
from berkas.client.sync import BerkasClient
from berkas.core.catalogue import Category, DocumentCode
from berkas.core.codes import Code as ErrorCode

__all__ = [
    "AsyncBerkasClient",
    "AuthenticationError",
    "BerkasAPIError",
    "BerkasClient",
    "BerkasClientError",
    "Category",
    "ChecksumMismatch",
    "ConfigurationError",
    "ConflictError",
    "ConnectionFailed",
    "DocumentCode",
    "DryRunResult",
    "ErrorCode",
    "FetchError",
    "FileEvent",
    "FileEvents",
    "FileInfo",
    "FileInput",
    "FilePage",
    "InvalidRequestError",
    "ListedFile",
    "NotFoundError",
    "OnProgress",
    "PermissionDeniedError",
    "RateLimitError",
    "ReplayedError",
    "Requirement",
    "RequirementField",
    "Requirements",
    "RetryPolicy",
    "ServerError",
    "Token",
    "TooLargeError",
    "UnsupportedContentError",
    "UploadedFile",
]
