"""The upload use case (DESIGN 2.4): validate fields, ingest bytes, store atomically, link."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from berkas.core import content
from berkas.core.catalogue import Catalogue, Category, DocumentCode
from berkas.core.errors import (
    BerkasError,
    Conflict,
    FetchRefused,
    InvalidRequest,
    PayloadTooLarge,
    Unavailable,
    UnsupportedContent,
)
from berkas.core.ids import IdMinter
from berkas.core.models import Client, StoredFile
from berkas.core.ports import BlobStore, Clock, Fetcher, FileRepository
from berkas.services.ingest import Spool
from berkas.services.links import IssuedLink, LinkService

log = logging.getLogger(__name__)

# The catalogue's upper-case extensions (DOKU's wire form) and the kinds they denote.
_KIND_OF_EXTENSION = {
    "JPG": content.Kind.JPEG,
    "JPEG": content.Kind.JPEG,
    "PNG": content.Kind.PNG,
    "PDF": content.Kind.PDF,
}

# An id or key collision can only follow a clock step backwards across a restart; a
# couple of fresh mints always clear it.
_MINT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class UploadTarget:
    """The validated ``category``/``code`` pair and the cap that follows from it."""

    category: Category
    code: DocumentCode | None
    max_bytes: int
    label: str
    kinds: frozenset[content.Kind]


@dataclass(frozen=True, slots=True)
class UploadResult:
    stored: StoredFile
    link: IssuedLink


class UploadService:
    """Turns an uploaded or fetched body into a stored file with an id and a link."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        files: FileRepository,
        blobs: BlobStore,
        minter: IdMinter,
        clock: Clock,
        links: LinkService,
        spool_dir: Path,
        image_limits: content.ImageLimits,
        key_prefix: str,
        env: str,
        node_id: int,
        fetcher: Fetcher | None,
    ) -> None:
        self._catalogue = catalogue
        self._files = files
        self._blobs = blobs
        self._minter = minter
        self._clock = clock
        self._links = links
        self._spool_dir = spool_dir
        self._limits = image_limits
        self._key_prefix = key_prefix
        self._env = env
        self._node_id = node_id
        self._fetcher = fetcher

    @property
    def fetch_enabled(self) -> bool:
        return self._fetcher is not None

    def max_upload_bytes(self) -> int:
        """The cap before the category is known: the largest of any requirement."""
        return self._catalogue.max_upload_bytes()

    def target(self, category: str | None, code: str | None) -> UploadTarget:
        """Validate the multipart ``category`` and ``code`` fields (DESIGN 2.4)."""
        if category is None or category.strip() == "":
            raise InvalidRequest(
                f"category is required; one of {_names(Category)}.", code="category_missing"
            )
        try:
            cat = Category(category.strip())
        except ValueError:
            raise InvalidRequest(
                f"category {category!r} is not accepted; one of {_names(Category)}.",
                code="category_invalid",
            ) from None
        doc: DocumentCode | None = None
        if cat is Category.DOCUMENT:
            if code is None or code.strip() == "":
                raise InvalidRequest(
                    f"code is required when category is DOCUMENT; one of {_names(DocumentCode)}.",
                    code="code_missing",
                )
            try:
                doc = DocumentCode(code.strip())
            except ValueError:
                raise InvalidRequest(
                    f"code {code!r} is not a document code; one of {_names(DocumentCode)}.",
                    code="code_invalid",
                ) from None
        # DOKU ignores ``code`` for the other categories (DESIGN 2.4); so do we.
        requirement = self._catalogue.requirement(cat, doc)
        return UploadTarget(
            category=cat,
            code=doc,
            max_bytes=self._catalogue.max_size_bytes(cat, doc),
            label=self._catalogue.label(cat, doc),
            # What GET /file promises is what POST /file accepts: the requirement's
            # extensions (an operator's catalogue may narrow them, e.g. KTP as PDF only).
            kinds=frozenset(_KIND_OF_EXTENSION[ext] for ext in requirement.extensions),
        )

    def open_spool(self, max_bytes: int | None = None, label: str = "upload") -> Spool:
        """A temporary file that counts, hashes and caps the bytes written to it."""
        return Spool.create(self._spool_dir, max_bytes or self.max_upload_bytes(), label)

    async def fetch(self, target: UploadTarget, url: str, spool: Spool) -> None:
        """Fetch ``file_url`` into ``spool`` under the egress policy."""
        if self._fetcher is None:
            raise InvalidRequest(
                "file_url uploads are not enabled on this server; send the document as file.",
                code="url_upload_disabled",
            )
        try:
            await self._fetcher.fetch(url, spool.write, target.max_bytes)
        except PayloadTooLarge as exc:
            # A fetch refusal is a 422 whatever its cause (issue 3), same code.
            raise FetchRefused(exc.message, code=exc.code) from exc

    def store(
        self,
        client: Client,
        target: UploadTarget,
        spool: Spool,
        *,
        filename: str | None,
        fetched: bool = False,
    ) -> UploadResult:
        """Inspect the spooled bytes, then store blob and row (blob durable first)."""
        try:
            spool.tighten(target.max_bytes, target.label)
            spool.finish()
            info = content.inspect(
                spool.path,
                head=spool.head,
                size=spool.size,
                allowed=target.kinds,
                filename=filename,
                label=target.label,
                limits=self._limits,
            )
        except (UnsupportedContent, PayloadTooLarge, InvalidRequest) as exc:
            if fetched:
                raise FetchRefused(exc.message, code=exc.code) from exc
            raise
        try:
            return self._commit(client, target, spool, info)
        except Conflict as exc:
            # Only a race after several fresh mints ends here; the caller can simply retry.
            raise Unavailable(
                "could not allocate a unique file id; retry the upload.",
                code="id_allocation_failed",
            ) from exc

    def _commit(
        self, client: Client, target: UploadTarget, spool: Spool, info: content.ContentInfo
    ) -> UploadResult:
        for attempt in range(_MINT_ATTEMPTS):
            last = attempt + 1 == _MINT_ATTEMPTS
            minted = self._minter.mint(target.category.id_prefix)
            # A taken id is skipped before any byte moves: a store may move the spooled
            # file into place (BlobStore.put_file), after which it cannot be put again.
            if not last and self._files.get(minted.id) is not None:
                continue
            key = self._key(client, target.category, minted.epoch_ms, info.kind)
            # The intent first: a crash between the blob and its row leaves this record,
            # and the restart removes the blob (recover_orphans).
            self._files.reserve_key(key, self._node_id, self._clock.now())
            try:
                self._blobs.put_file(key, spool.path, info.kind.mime)
            except Conflict:
                if last or not spool.path.exists():
                    raise
                continue
            stored = StoredFile(
                id=minted.id,
                client_id=client.client_id,
                category=target.category.value,
                code=target.code.value if target.code else None,
                key=key,
                content_type=info.kind.mime,
                size=spool.size,
                sha256=spool.sha256,
                width=info.width,
                height=info.height,
                created_at=self._clock.now(),
            )
            try:
                self._files.add(stored)
            except BaseException as exc:
                # The row is the commit point: without it the blob is garbage (DESIGN 5).
                if _quietly(self._blobs.delete, key):
                    _quietly(self._files.release_key, key)
                if isinstance(exc, Conflict) and not last and spool.path.exists():
                    continue
                raise
            return UploadResult(stored=stored, link=self._links.issue(key))
        raise AssertionError("unreachable")  # pragma: no cover

    def recover_orphans(self) -> int:
        """At start, before serving: remove blobs this node wrote whose row never
        committed (a crash in between); returns how many. Not safe while serving."""
        removed = 0
        for key in self._files.reserved_keys(self._node_id):
            if self._files.get_by_key(key) is None:
                self._blobs.delete(key)
                removed += 1
            self._files.release_key(key)
        return removed

    def _key(self, client: Client, category: Category, epoch_ms: int, kind: content.Kind) -> str:
        # DOKU's layout <prefix>/<env>/TEMP/<businessServiceClientId>/<category>/<epoch ms>.<ext>,
        # with the node number added so two nodes minting in the same millisecond differ.
        return (
            f"{self._key_prefix}/{self._env}/TEMP/{client.client_id}/{category.value}/"
            f"{epoch_ms}-{self._node_id:04d}.{kind.extension}"
        )


def _names(enum_type: type[Category] | type[DocumentCode]) -> str:
    return ", ".join(member.value for member in enum_type)


def _quietly(action: Callable[[str], None], key: str) -> bool:
    try:
        action(key)
    except BerkasError:
        # Left for recover_orphans at the next start: the key is still reserved.
        log.exception("cleanup after a failed upload did not complete")
        return False
    return True
