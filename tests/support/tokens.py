"""Hand-made bearer tokens for the token suites: claims and headers of the test's choosing,
signed with the server's own key (``Server.signing_key``), a foreign one, or none."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

SUBJECT = "payload"
CLIENT_CLAIM = "businessServiceClientId"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(document: Mapping[str, object]) -> str:
    return b64url(json.dumps(document, separators=(",", ":")).encode())


def claims(client_id: str, lifetime: int = 300, **changes: object) -> dict[str, Any]:
    """DOKU's claims for ``client_id``, issued now for ``lifetime`` seconds; a change
    to ``None`` removes that claim."""
    now = int(time.time())
    document: dict[str, Any] = {
        "sub": SUBJECT,
        "exp": now + lifetime,
        "iat": now,
        "user": {CLIENT_CLAIM: client_id},
    }
    document.update(changes)
    return {name: value for name, value in document.items() if value is not None}


def signed(key: RSAPrivateKey, kid: str, document: Mapping[str, Any], **headers: object) -> str:
    """An RS256 token over ``document`` with ``kid`` (and more ``headers``)."""
    return jwt.encode(dict(document), key, algorithm="RS256", headers={"kid": kid, **headers})


def current_kid(base_url: str) -> str:
    """The kid a single-key server publishes in its JWKS."""
    keys = httpx.get(f"{base_url}/.well-known/jwks.json", timeout=10).json()["keys"]
    assert len(keys) == 1, keys
    return str(keys[0]["kid"])
