"""Signed download links: an HMAC over the object key, expiry and the file's link
generation (docs/design.md 2.4, 3.1; revocation, 6.2).

Owns the link signature, its verification and the link URL layout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote

from berkas.core.codes import Code
from berkas.core.errors import PermissionDenied
from berkas.core.object_keys import key_problem

# 256 bits, the HMAC-SHA256 output size; RFC 2104 section 3 advises keys of at least
# the output length, and a link key is the only thing between a URL and a KYC document.
MIN_SECRET_BYTES = 32
# Canonical decimal seconds: no sign, no leading zeros, ASCII digits only (int() would
# also take "+5", " 5" and other scripts' digits, all spelling the same signed value).
_EXPIRES = re.compile(r"0|[1-9][0-9]{0,11}")
# URL-safe base64 of 32 bytes without padding is exactly 43 characters, after the link
# generation it was signed for and a dot when that is not 0 (as a token's jti names its
# token generation, docs/design.md 2.2): the generation is then known, and the MAC
# checked, before anything is read from the database (6.2).
_SIGNATURE = re.compile(r"(?:([1-9][0-9]{0,9})\.)?([A-Za-z0-9_-]{43})")
# A bare MAC that is not generation 0's was issued before signatures named their
# generation (or by an older node of the fleet): tried against this many generations.
_BARE_LOOKBACK = 16


@dataclass(frozen=True, slots=True)
class GenuineLink:
    """A link whose signature verified: the key, expiry and generation it was signed for."""

    key: str
    expires_at: int
    generation: int

    def expired(self, now: int) -> bool:
        return now >= self.expires_at


class LinkSigner:
    """Signs and verifies download links with a key that is no client's secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"link signing secret is {len(secret)} bytes; at least "
                f"{MIN_SECRET_BYTES} random bytes are required"
            )
        self._secret = secret

    def sign(self, key: str, expires_at: int, generation: int = 0) -> str:
        """Return the URL-safe base64 (unpadded) HMAC-SHA256 of ``key``, ``expires_at``
        and ``generation`` (bumped by a revocation, so every older link stops verifying),
        after ``<generation>.`` when the generation is not 0.

        ``key`` must be a well-formed object key and ``expires_at`` non-negative epoch
        seconds; anything else is a programming error (``ValueError``).
        """
        problem = key_problem(key)
        if problem is not None:
            raise ValueError(f"object key {key[:80]!r} has {problem}")
        if isinstance(expires_at, bool) or not isinstance(expires_at, int) or expires_at < 0:
            raise ValueError(f"expires_at must be non-negative epoch seconds, got {expires_at!r}")
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            raise ValueError(f"generation must be a non-negative int, got {generation!r}")
        mac = self._mac(key, expires_at, generation)
        return mac if generation == 0 else f"{generation}.{mac}"

    def authenticate(self, key: str, expires: str, signature: str) -> GenuineLink:
        """The link this signature was made for, or ``PermissionDenied`` (``link_invalid``)
        when it is malformed or was not made with this signer's secret.

        Needs no state: it runs before anything is read about ``key``, so how long a
        refusal takes says nothing about whether the key exists. Expiry is not checked
        here (``GenuineLink.expired``).
        """
        if key_problem(key) is not None:
            raise PermissionDenied("This link's file path is not valid.", code=Code.LINK_INVALID)
        if _EXPIRES.fullmatch(expires) is None:
            raise PermissionDenied(
                "This link's expires parameter must be epoch seconds (digits only).",
                code=Code.LINK_INVALID,
            )
        shape = _SIGNATURE.fullmatch(signature)
        if shape is None:
            raise PermissionDenied(
                "This link's signature parameter is malformed.", code=Code.LINK_INVALID
            )
        named, mac = shape.groups()
        expires_at = int(expires)
        candidates = [int(named)] if named else range(_BARE_LOOKBACK + 1)
        for generation in candidates:
            expected = self._mac(key, expires_at, generation)
            # Constant time in the MAC (RFC 2104 section 5 leaves comparison to the
            # implementation; a byte-wise early exit would leak the expected MAC).
            if hmac.compare_digest(expected.encode("ascii"), mac.encode("ascii")):
                return GenuineLink(key, expires_at, generation)
        raise PermissionDenied(
            "This link's signature does not match; request a fresh link.",
            code=Code.LINK_INVALID,
        )

    def verify(self, key: str, expires: str, signature: str, now: int, generation: int = 0) -> None:
        """Accept a link or raise ``PermissionDenied``.

        Malformed or tampered links, and links of another ``generation``, raise code
        ``link_invalid``; a genuine link whose expiry has been reached
        (``now >= expires``) raises ``link_expired``. The signature is checked before the
        expiry, so only genuine links are called expired.
        """
        link = self.authenticate(key, expires, signature)
        if link.generation != generation:
            raise PermissionDenied(
                "This link's signature does not match; request a fresh link.",
                code=Code.LINK_INVALID,
            )
        if link.expired(now):
            raise PermissionDenied(
                "This link has expired; request a fresh link for the file.",
                code=Code.LINK_EXPIRED,
            )

    def url(self, base_url: str, key: str, expires_at: int, generation: int = 0) -> str:
        """Return ``<base_url>/links/<key>?expires=<expires_at>&signature=<sig>``."""
        signature = self.sign(key, expires_at, generation)
        path = quote(key, safe="/")
        return f"{base_url.rstrip('/')}/links/{path}?expires={expires_at}&signature={signature}"

    def _mac(self, key: str, expires_at: int, generation: int) -> str:
        # The key never contains a line break, so the message is unambiguous. Generation 0
        # signs exactly what links did before revocation existed, so they keep working.
        text = f"{key}\n{expires_at}" if generation == 0 else f"{key}\n{expires_at}\n{generation}"
        message = text.encode()
        mac = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
