"""DOKU's HMAC request signing (docs/design.md 2.1), shared by the server and the SDK.

Owns the string to sign, the body digest, the signature and the Request-Timestamp format.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from berkas.core.codes import Code
from berkas.core.errors import AuthenticationFailed

SIGNATURE_PREFIX = "HMACSHA256="
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# base64(SHA-256(b"")), the Digest of a request whose body is present but empty.
EMPTY_BODY_DIGEST = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

# ASCII digits only: ``\d`` and ``strptime`` also accept other Unicode digits and
# single-digit fields, and DOKU documents exactly one spelling (2020-08-11T08:45:42Z).
_TIMESTAMP_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def digest(body: bytes) -> str:
    """Return base64 (standard, padded) of SHA-256 over the exact body bytes."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def string_to_sign(
    *, client_id: str, request_id: str, timestamp: str, target: str, digest: str | None
) -> str:
    """Build DOKU's string to sign: lines joined by LF, no trailing LF.

    The ``Digest`` line is present only when ``digest`` is not None (a request with a
    body). A field containing CR or LF raises ``ValueError``: such a value could shift
    text from one line to the next, e.g. a target ending in ``"\\nDigest:..."`` would
    sign the same string as a request with a body, so it is never signed or accepted.
    """
    fields = [
        ("Client-Id", client_id),
        ("Request-Id", request_id),
        ("Request-Timestamp", timestamp),
        ("Request-Target", target),
    ]
    if digest is not None:
        fields.append(("Digest", digest))
    for name, value in fields:
        if "\n" in value or "\r" in value:
            raise ValueError(f"{name} must not contain a line break")
    return "\n".join(f"{name}:{value}" for name, value in fields)


def sign(
    secret_key: str,
    *,
    client_id: str,
    request_id: str,
    timestamp: str,
    target: str,
    digest: str | None,
) -> str:
    """Return the ``Signature`` header value: ``HMACSHA256=`` + base64(HMAC-SHA256)."""
    message = string_to_sign(
        client_id=client_id,
        request_id=request_id,
        timestamp=timestamp,
        target=target,
        digest=digest,
    )
    mac = hmac.new(secret_key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256)
    return SIGNATURE_PREFIX + base64.b64encode(mac.digest()).decode("ascii")


def signature_matches(
    secret_key: str,
    signature: str,
    *,
    client_id: str,
    request_id: str,
    timestamp: str,
    targets: Sequence[str],
    digest: str | None,
) -> bool:
    """Return True when ``signature`` is valid for any candidate request target.

    The server passes the path and the path with its query string: DOKU does not say
    which one is signed and clients differ (docs/design.md 2.1). Every candidate is compared,
    each with ``hmac.compare_digest``, so timing reveals nothing about the expected
    value. Fields with line breaks never match (see ``string_to_sign``).
    """
    # Compare bytes: compare_digest refuses non-ASCII str, and the header is caller text.
    given = signature.encode("utf-8", "surrogatepass")
    matched = False
    for target in targets:
        try:
            expected = sign(
                secret_key,
                client_id=client_id,
                request_id=request_id,
                timestamp=timestamp,
                target=target,
                digest=digest,
            )
        except ValueError:
            continue
        matched |= hmac.compare_digest(expected.encode("ascii"), given)
    return matched


def format_timestamp(dt: datetime) -> str:
    """Format an aware datetime as DOKU's ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware (a naive datetime is ambiguous)")
    return dt.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(value: str) -> datetime:
    """Parse a Request-Timestamp strictly as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC).

    Raises ``AuthenticationFailed`` (code ``timestamp_invalid``) for any other spelling,
    including offsets other than ``Z``, fractional seconds and impossible dates.
    """
    problem = (
        f"Request-Timestamp {value[:40]!r} is not a UTC timestamp in the form "
        "YYYY-MM-DDTHH:MM:SSZ (for example 2020-08-11T08:45:42Z)."
    )
    if not _TIMESTAMP_SHAPE.fullmatch(value):
        raise AuthenticationFailed(problem, code=Code.TIMESTAMP_INVALID)
    try:
        parsed = datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:  # right shape, impossible date such as month 13
        raise AuthenticationFailed(problem, code=Code.TIMESTAMP_INVALID) from None
    return parsed.replace(tzinfo=UTC)


def timestamp_within(ts: datetime, now: datetime, window: timedelta) -> bool:
    """Return True when ``ts`` lies within ``window`` of ``now``, either side."""
    return abs(ts - now) <= window


def signed_headers(
    *,
    client_id: str,
    secret_key: str,
    target: str,
    body: bytes | None,
    request_id: str | None = None,
    timestamp: datetime | None = None,
) -> dict[str, str]:
    """Return the four DOKU headers for a request (for the SDK and tests).

    ``body=None`` means the request has no body (a GET): no Digest line is signed.
    ``request_id`` defaults to a fresh UUID4 and ``timestamp`` to now.
    """
    rid = request_id if request_id is not None else str(uuid.uuid4())
    ts = format_timestamp(timestamp if timestamp is not None else datetime.now(UTC))
    signature = sign(
        secret_key,
        client_id=client_id,
        request_id=rid,
        timestamp=ts,
        target=target,
        digest=None if body is None else digest(body),
    )
    return {
        "Client-Id": client_id,
        "Request-Id": rid,
        "Request-Timestamp": ts,
        "Signature": signature,
    }
