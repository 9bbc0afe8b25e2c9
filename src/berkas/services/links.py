"""Issues and checks the 60-minute signed download links (docs/design.md 2.4 ``link``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from berkas.core.codes import Code
from berkas.core.errors import PermissionDenied
from berkas.core.links import GenuineLink, LinkSigner
from berkas.core.models import StoredFile
from berkas.core.ports import Clock, LinkPresigner


@dataclass(frozen=True, slots=True)
class IssuedLink:
    url: str
    expires_at: datetime


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

    def authenticate(self, key: str, expires: str, signature: str) -> GenuineLink:
        """The link the signature was made for, or ``PermissionDenied`` (``link_invalid``).
        Reads nothing: a forged link is refused before the database is asked anything."""
        return self._signer.authenticate(key, expires, signature)

    def refusal(self, link: GenuineLink, generation: int | None) -> PermissionDenied | None:
        """Why a genuine ``link`` opens nothing, given its file's current link
        ``generation`` (None: no file under its key), or None when it opens.

        A link of an earlier generation was revoked (also once expired: the owner's act
        is the better answer); one of a later generation than the file's can only follow
        a database set back, and matches nothing; past its expiry it has expired.
        """
        if generation is not None and link.generation < generation:
            return PermissionDenied(
                "This link was revoked by its owner; ask the API for a fresh one (GET /file/{id}).",
                code=Code.LINK_REVOKED,
            )
        if generation is not None and link.generation > generation:
            return PermissionDenied(
                "This link's signature does not match; request a fresh link.",
                code=Code.LINK_INVALID,
            )
        if link.expired(int(self._clock.now().timestamp())):
            return PermissionDenied(
                "This link has expired; request a fresh link for the file.",
                code=Code.LINK_EXPIRED,
            )
        return None
