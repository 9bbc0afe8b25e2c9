"""Issues and checks the 60-minute signed download links (docs/design.md 2.4 ``link``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from berkas.core.codes import Code
from berkas.core.errors import PermissionDenied
from berkas.core.links import LinkSigner
from berkas.core.models import StoredFile
from berkas.core.ports import Clock, LinkPresigner


@dataclass(frozen=True, slots=True)
class IssuedLink:
    url: str
    expires_at: datetime


# How many revocations back a refused link is recognised as revoked (rather than
# altered): bounds the HMACs a refused link costs.
_REVOKED_LOOKBACK = 16


class LinkService:
    """Proxy links (the default) are URLs on this server, HMAC-signed over the object key
    and expiry; with a ``presigner`` (``BERKAS_LINK_MODE=presigned``) a link is the
    store's own signed URL instead, and the bytes never pass through a node."""

    def __init__(
        self,
        signer: LinkSigner,
        clock: Clock,
        *,
        base_url: str,
        ttl: timedelta,
        presigner: LinkPresigner | None = None,
    ) -> None:
        self._signer = signer
        self._clock = clock
        self._base_url = base_url
        self._ttl = ttl
        self._presigner = presigner

    def issue(self, stored: StoredFile) -> IssuedLink:
        """A fresh link to ``stored``'s bytes valid for the configured time."""
        seconds = int(self._ttl.total_seconds())
        expires = int(self._clock.now().timestamp()) + seconds
        # An encrypted document cannot go straight from the store: the store holds its
        # envelope. Its link is a proxy one, whatever the mode (rows written while at-rest
        # encryption was on stay readable after a switch to presigned links).
        if self._presigner is not None and stored.data_key is None:
            extension = stored.key.rsplit(".", 1)[-1]
            url = self._presigner.presign(
                stored.key,
                content_type=stored.content_type,
                filename=f"{stored.id}.{extension}",
                expires_in=seconds,
            )
        else:
            url = self._signer.url(self._base_url, stored.key, expires, stored.link_generation)
        return IssuedLink(url=url, expires_at=datetime.fromtimestamp(expires, tz=UTC))

    def check(self, key: str, expires: str, signature: str, generation: int = 0) -> None:
        """Raise ``PermissionDenied`` unless the link is intact, unexpired and of the
        file's current ``generation`` (issued after its last revocation)."""
        now = int(self._clock.now().timestamp())
        try:
            self._signer.verify(key, expires, signature, now, generation)
        except PermissionDenied as refused:
            if refused.code is Code.LINK_INVALID and self._revoked(
                key, expires, signature, now, generation
            ):
                raise PermissionDenied(
                    "This link was revoked by its owner; ask the API for a fresh one "
                    "(GET /file/{id}).",
                    code=Code.LINK_REVOKED,
                ) from None
            raise

    def _revoked(self, key: str, expires: str, signature: str, now: int, generation: int) -> bool:
        # A genuine link of an earlier generation is "revoked", not "altered". Only a
        # refused link pays this, at most _REVOKED_LOOKBACK more HMACs; a forged one
        # (no generation verifies) stays link_invalid.
        for earlier in range(generation - 1, max(-1, generation - 1 - _REVOKED_LOOKBACK), -1):
            try:
                self._signer.verify(key, expires, signature, now, earlier)
            except PermissionDenied as refused:
                if refused.code is Code.LINK_EXPIRED:
                    return True
                continue
            return True
        return False
