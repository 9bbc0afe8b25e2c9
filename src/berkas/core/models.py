"""The records berkas keeps: partner clients, stored files, replay records, signing keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Client:
    """A partner: its DOKU-style Client-Id and the HMAC secret it signs requests with."""

    client_id: str
    secret_key: str
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredFile:
    """Metadata of one stored document; the bytes live in the blob store under ``key``."""

    id: str
    client_id: str
    category: str
    code: str | None
    key: str
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """A Request-Id already seen for a client: what it asked for and what it got back.

    ``status``/``body`` are ``None`` while the first request is still in flight.
    """

    client_id: str
    request_id: str
    fingerprint: str
    status: int | None
    body: bytes | None
    created_at: datetime
