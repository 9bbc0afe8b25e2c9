"""Issues and checks the 60-minute signed download links (DESIGN 2.4 ``link``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from berkas.core.links import LinkSigner
from berkas.core.ports import Clock


@dataclass(frozen=True, slots=True)
class IssuedLink:
    url: str
    expires_at: datetime


class LinkService:
    """Links are URLs on this server, HMAC-signed over the object key and expiry."""

    def __init__(self, signer: LinkSigner, clock: Clock, *, base_url: str, ttl: timedelta) -> None:
        self._signer = signer
        self._clock = clock
        self._base_url = base_url
        self._ttl = ttl

    def issue(self, key: str) -> IssuedLink:
        """A fresh link to ``key`` valid for the configured time."""
        expires = int((self._clock.now() + self._ttl).timestamp())
        return IssuedLink(
            url=self._signer.url(self._base_url, key, expires),
            expires_at=datetime.fromtimestamp(expires, tz=UTC),
        )

    def check(self, key: str, expires: str, signature: str) -> None:
        """Raise ``PermissionDenied`` unless the link is intact and unexpired."""
        self._signer.verify(key, expires, signature, int(self._clock.now().timestamp()))
