"""The upload use case (docs/design.md 2.4, 3): one entry point per source, a file or a URL.

Owns everything between "the body has been read" and "here is the id and link":
resolving the requirement once, the file-xor-url rule, upload idempotency, the fetch
(and the one place a fetch refusal becomes a 422), the spool's lifecycle, inspection,
the atomic store and the answer, fresh link included, for a retry. Its values (target,
body, answers) are in services/upload_types.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from anyio import to_thread

from berkas.core import content
from berkas.core.catalogue import (
    Catalogue,
    parse_category,
    parse_document_code,
)
from berkas.core.codes import Code
from berkas.core.errors import (
    BerkasError,
    FetchRefused,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UnsupportedContent,
)
from berkas.core.models import Caller, Client
from berkas.core.ports import Fetcher
from berkas.services import stripping
from berkas.services.documents import DocumentStore
from berkas.services.idempotency import IdempotentUploads
from berkas.services.links import LinkService
from berkas.services.spool import Spool, SpoolWriter, check_free_space, derive
from berkas.services.upload_types import (
    KIND_OF_EXTENSION,
    Body,
    DryRun,
    UploadFields,
    UploadResult,
    UploadTarget,
    file_url,
    file_xor_url,
)

log = logging.getLogger(__name__)
# An upload from code that has no request behind it (tests, in-process callers).
_NOBODY = Caller()

# A body up to this size stays in memory while it is checked, stripped and sealed: its
# one file is the one the store keeps (services/spool.py). Per upload, so a node holds at
# most its concurrent-upload cap times this (256 x 512 KiB) however large the bodies.
MEMORY_BYTES = 512 * 1024

# Names the cap while category and code are not known yet (the file came first).
_ANY_UPLOAD = "an upload of any category"

_T = TypeVar("_T")


class UploadService:
    """Turns an uploaded or fetched body into a stored file with an id and a link."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        documents: DocumentStore,
        links: LinkService,
        idempotency: IdempotentUploads,
        spool_dir: Path,
        image_limits: content.ImageLimits,
        fetcher: Fetcher | None,
        encrypt: bool = False,
        keep_metadata: frozenset[str] = frozenset(),
    ) -> None:
        self._catalogue = catalogue
        self._documents = documents  # the bytes and the row, kept in step
        self._links = links
        self._idempotency = idempotency
        self._spool_dir = spool_dir
        self._limits = image_limits
        self._fetcher = fetcher
        self._encrypt = encrypt  # every document is stored encrypted
        self._keep_metadata = keep_metadata  # categories whose images keep their EXIF etc.
        # The cap before the category is known: the largest of any requirement.
        self.max_upload_bytes = catalogue.max_upload_bytes()

    def target(self, fields: UploadFields) -> UploadTarget:
        """The requirement the ``category`` and ``code`` fields name (docs/design.md 2.4)."""
        category = parse_category(fields.get("category"))
        code = parse_document_code(category, fields.get("code"))
        requirement = self._catalogue.requirement(category, code)
        return UploadTarget(
            category=category,
            code=code,
            max_bytes=self._catalogue.max_size_bytes(category, code),
            label=self._catalogue.label(category, code),
            # What GET /file promises is what POST /file accepts: the requirement's
            # extensions (an operator's catalogue may narrow them, e.g. KTP as PDF only).
            kinds=frozenset(KIND_OF_EXTENSION[ext] for ext in requirement.extensions),
        )

    def check_spool(self) -> None:
        """Raise ``InsufficientStorage`` while the spool's disk is full (for /readyz)."""
        check_free_space(self._spool_dir)

    def open_spool(self, fields: UploadFields) -> Spool:
        """A spool for the ``file`` part, capped by the requirement when the fields before
        it name one (the usual order), else by the largest cap, tightened once known."""
        try:
            target = self.target(fields)
        except InvalidRequest:
            return Spool.create(
                self._spool_dir, self.max_upload_bytes, _ANY_UPLOAD, memory_bytes=MEMORY_BYTES
            )
        return self._spool(target)

    async def upload_file(
        self,
        client: Client,
        fields: UploadFields,
        spool: Spool,
        key: str | None,
        caller: Caller = _NOBODY,
    ) -> UploadResult:
        """Store the ``file`` part the caller sent (spooled, complete); the spool is
        always discarded by the time this returns. ``key`` is the raw Idempotency-Key;
        ``caller`` is recorded in the ``uploaded`` audit event.

        The part's filename plays no part: the type is what the bytes are (docs/design.md 2.4),
        and phones name files as they please, so a PNG called ``photo.jpg`` is a PNG.
        """
        try:
            target = self._file_target(fields, spool)
            return await self._once(
                client,
                key,
                target,
                spool.sha256,
                lambda: to_thread.run_sync(self._store, client, target, spool, caller),
            )
        finally:
            spool.discard()

    async def check_file(self, client: Client, fields: UploadFields, spool: Spool) -> DryRun:
        """``upload_file``'s checks and answer, storing nothing (``Berkas-Dry-Run``). No
        Idempotency-Key is consulted or reserved: a dry run has no effect to repeat."""
        try:
            target = self._file_target(fields, spool)
            return await to_thread.run_sync(self._check, client, target, spool)
        finally:
            spool.discard()

    def _file_target(self, fields: UploadFields, spool: Spool) -> UploadTarget:
        target = self.target(fields)
        if file_url(fields) is not None:
            raise file_xor_url("both were sent.")
        spool.tighten(target.max_bytes, target.label)
        return target

    async def upload_url(
        self, client: Client, fields: UploadFields, key: str | None, caller: Caller = _NOBODY
    ) -> UploadResult:
        """Fetch ``file_url`` under the egress policy (docs/design.md 4) and store what came
        back."""
        target, url, fetcher = self._url_target(fields)
        return await self._once(
            client,
            key,
            target,
            f"url:{url}",
            lambda: self._fetched(
                fetcher, target, url, lambda spool: self._store(client, target, spool, caller)
            ),
        )

    async def check_url(self, client: Client, fields: UploadFields) -> DryRun:
        """``upload_url``'s fetch, checks and answer, storing nothing (``Berkas-Dry-Run``)."""
        target, url, fetcher = self._url_target(fields)
        return await self._fetched(
            fetcher, target, url, lambda spool: self._check(client, target, spool)
        )

    def _url_target(self, fields: UploadFields) -> tuple[UploadTarget, str, Fetcher]:
        target = self.target(fields)
        url = file_url(fields)
        if url is None:
            raise file_xor_url("neither was sent.")
        if self._fetcher is None:
            raise InvalidRequest(
                "file_url uploads are not enabled on this server; send the document as file.",
                code=Code.URL_UPLOAD_DISABLED,
            )
        return target, url, self._fetcher

    async def _fetched(
        self, fetcher: Fetcher, target: UploadTarget, url: str, then: Callable[[Spool], _T]
    ) -> _T:
        """Fetch ``url`` into a spool and hand it to ``then`` on a worker thread."""
        spool = self._spool(target)
        try:
            try:
                writer = SpoolWriter(spool)
                await fetcher.fetch(url, writer)
                await writer.flush()
                return await to_thread.run_sync(then, spool)
            except (PayloadTooLarge, UnsupportedContent, InvalidRequest) as exc:
                # The one place a fetched body's refusal becomes a fetch refusal: 422
                # whatever its cause (docs/design.md 4.2), keeping its code and message.
                raise FetchRefused(exc.message, code=exc.code) from exc
        finally:
            spool.discard()

    async def _once(
        self,
        client: Client,
        raw_key: str | None,
        target: UploadTarget,
        content_id: str,
        work: Callable[[], Awaitable[UploadResult]],
    ) -> UploadResult:
        """Run ``work`` at most once per idempotency key (docs/design.md 3.2)."""
        key = IdempotentUploads.parse_key(raw_key)
        if key is None:
            return await work()
        fingerprint = IdempotentUploads.fingerprint(
            target.category.value, target.code.value if target.code else None, content_id
        )
        first = await to_thread.run_sync(self._idempotency.begin, client, key, fingerprint)
        if first is not None:
            return await to_thread.run_sync(self._replay, client, first)
        try:
            result = await work()
        except BaseException:
            await to_thread.run_sync(self._idempotency.release, client, key)
            raise
        try:
            await to_thread.run_sync(self._idempotency.finish, client, key, result.stored.id)
        except BerkasError:
            # The file is stored and committed: answer with it. A retry of this key hears
            # "in progress" until the reservation goes stale (then runs again); failing
            # this request instead would make that retry the only way to learn the id.
            log.exception("the upload is stored but its Idempotency-Key was not recorded")
        return result

    def _replay(self, client: Client, file_id: str) -> UploadResult:
        # The first upload's file with a fresh link (the first link may have expired).
        stored = self._documents.get(file_id)
        if stored is None or stored.client_id != client.client_id:
            raise NotFound(
                "The file this Idempotency-Key stored is gone.", code=Code.FILE_NOT_FOUND
            )
        first = self._documents.duplicate_of(stored.client_id, stored.category, stored.sha256)
        return UploadResult(
            stored=stored,
            link=self._links.issue(stored),
            replayed=True,
            duplicate_of=None if first == stored.id else first,
        )

    def _spool(self, target: UploadTarget) -> Spool:
        return Spool.create(
            self._spool_dir, target.max_bytes, target.label, memory_bytes=MEMORY_BYTES
        )

    def _store(
        self, client: Client, target: UploadTarget, spool: Spool, caller: Caller
    ) -> UploadResult:
        """Inspect the spooled bytes, then store them (services/documents.py)."""
        derived: list[Path] = []
        try:
            body, info = self._examine(target, spool, derived)
            done = self._documents.store(client, target, body, info, caller)
            return UploadResult(
                stored=done.stored,
                link=self._links.issue(done.stored),
                duplicate_of=done.duplicate_of,
            )
        finally:
            for path in derived:
                path.unlink(missing_ok=True)

    def _check(self, client: Client, target: UploadTarget, spool: Spool) -> DryRun:
        """``_store`` up to the store: the same checks, stripping included, then nothing
        is kept (the stripped copy is removed, no blob, row or event is written)."""
        derived: list[Path] = []
        try:
            body, info = self._examine(target, spool, derived, seal=False)
        finally:
            for path in derived:
                path.unlink(missing_ok=True)
        return DryRun(
            category=target.category.value,
            code=target.code.value if target.code else None,
            content_type=info.kind.mime,
            size=body.size,
            sha256=body.sha256,
            width=info.width,
            height=info.height,
            metadata_removed=body.removed,
            duplicate_of=self._documents.duplicate_of(
                client.client_id, target.category.value, body.sha256
            ),
        )

    def _examine(
        self, target: UploadTarget, spool: Spool, derived: list[Path], *, seal: bool | None = None
    ) -> tuple[Body, content.ContentInfo]:
        """The checks every upload passes (inspection), then the bytes as they will be
        stored: stripped and sealed in one pass (services/stripping.py, whose policy
        ``berkas files upgrade --strip`` shares)."""
        spool.finish()
        info = content.inspect(
            spool.source,
            head=spool.head,
            size=spool.size,
            allowed=target.kinds,
            label=target.label,
            limits=self._limits,
        )
        return stripping.stored_body(
            spool.source,
            info,
            size=spool.size,
            sha256=spool.sha256,
            category=target.category.value,
            keep_metadata=self._keep_metadata,
            label=target.label,
            limits=self._limits,
            seal=self._encrypt if seal is None else seal,
            derive=lambda write: derive(self._spool_dir, derived, write),
        )

    def recover_orphans(self) -> int:
        """At start, before serving: finish what a crash cut short (objects whose row
        never committed are removed, staged ones whose row did are published); returns
        how many objects were removed. Not safe while serving."""
        return self.recover_documents(own_staged_only=False)

    def recover_documents(self, *, own_staged_only: bool) -> int:
        """``recover_orphans``; ``own_staged_only``: staged bytes only of ids this node
        number minted (a worker starting beside its node's live workers)."""
        removed = self._documents.recover()
        return removed + self.recover_staged(own_only=own_staged_only)

    def recover_staged(self, *, own_only: bool = False) -> int:
        """Publish staged uploads whose row committed, drop the rest; returns how many
        were dropped. ``own_only``: only what this node number staged (a worker restarted
        beside its node's live workers, docs/design.md 5.6); otherwise everything staged,
        which is safe only while nothing on this data dir serves."""
        published, dropped = self._documents.recover_staged(
            self._documents.node_id if own_only else None
        )
        if published:
            log.warning("published %d upload(s) a crash left committed but unpublished", published)
        return dropped
