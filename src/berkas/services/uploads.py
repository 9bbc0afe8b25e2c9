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
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from anyio import to_thread

from berkas.core import content, envelope
from berkas.core.catalogue import (
    Catalogue,
    Category,
    parse_category,
    parse_document_code,
)
from berkas.core.codes import Code
from berkas.core.errors import (
    BerkasError,
    Conflict,
    FetchRefused,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedContent,
)
from berkas.core.ids import IdMinter
from berkas.core.models import Caller, Client, EventKind, StoredFile
from berkas.core.ports import BlobStore, Clock, DataKeys, Fetcher, FileRepository
from berkas.services import stripping
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

# An id or key collision can only follow a clock step backwards across a restart; a
# couple of fresh mints always clear it.
_MINT_ATTEMPTS = 3

# Names the cap while category and code are not known yet (the file came first).
_ANY_UPLOAD = "an upload of any category"

_T = TypeVar("_T")


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
        idempotency: IdempotentUploads,
        spool_dir: Path,
        image_limits: content.ImageLimits,
        key_prefix: str,
        env: str,
        node_id: int,
        fetcher: Fetcher | None,
        retention: Callable[[str], timedelta | None] = lambda category: None,
        data_keys: DataKeys | None = None,
        keep_metadata: frozenset[str] = frozenset(),
    ) -> None:
        self._catalogue = catalogue
        self._files = files
        self._blobs = blobs
        self._minter = minter
        self._clock = clock
        self._links = links
        self._idempotency = idempotency
        self._spool_dir = spool_dir
        self._limits = image_limits
        self._key_prefix = key_prefix
        self._env = env
        self._node_id = node_id
        self._fetcher = fetcher
        self._retention = retention  # per category; None keeps until deleted
        self._data_keys = data_keys  # set: every document is stored encrypted
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
            return Spool.create(self._spool_dir, self.max_upload_bytes, _ANY_UPLOAD)
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
        stored = self._files.get(file_id)
        if stored is None or stored.client_id != client.client_id:
            raise NotFound(
                "The file this Idempotency-Key stored is gone.", code=Code.FILE_NOT_FOUND
            )
        first = self._files.duplicate_of(stored.client_id, stored.category, stored.sha256)
        return UploadResult(
            stored=stored,
            link=self._links.issue(stored),
            replayed=True,
            duplicate_of=None if first == stored.id else first,
        )

    def _spool(self, target: UploadTarget) -> Spool:
        return Spool.create(self._spool_dir, target.max_bytes, target.label)

    def _store(
        self, client: Client, target: UploadTarget, spool: Spool, caller: Caller
    ) -> UploadResult:
        """Inspect the spooled bytes, then store blob and row (blob durable first)."""
        derived: list[Path] = []
        try:
            body, info, earlier = self._examine(client, target, spool, derived)
            result = self._commit(client, target, self._seal(body, derived), info, caller)
            return replace(result, duplicate_of=earlier)
        except Conflict as exc:
            # Only a race after several fresh mints ends here; the caller can simply retry.
            raise Unavailable(
                "could not allocate a unique file id; retry the upload.",
                code=Code.ID_ALLOCATION_FAILED,
            ) from exc
        finally:
            for path in derived:
                path.unlink(missing_ok=True)

    def _check(self, client: Client, target: UploadTarget, spool: Spool) -> DryRun:
        """``_store`` up to the store: the same checks, stripping included, then nothing
        is kept (the stripped copy is removed, no blob, row or event is written)."""
        derived: list[Path] = []
        try:
            body, info, earlier = self._examine(client, target, spool, derived)
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
            duplicate_of=earlier,
        )

    def _examine(
        self, client: Client, target: UploadTarget, spool: Spool, derived: list[Path]
    ) -> tuple[Body, content.ContentInfo, str | None]:
        """The checks every upload passes: inspection, then stripping; and the earlier
        file with the same stored bytes, if any."""
        spool.finish()
        info = content.inspect(
            spool.path,
            head=spool.head,
            size=spool.size,
            allowed=target.kinds,
            label=target.label,
            limits=self._limits,
        )
        body, info = self._strip(target, spool, info, derived)
        earlier = self._files.duplicate_of(client.client_id, target.category.value, body.sha256)
        return body, info, earlier

    def _strip(
        self, target: UploadTarget, spool: Spool, info: content.ContentInfo, derived: list[Path]
    ) -> tuple[Body, content.ContentInfo]:
        """The document as it will be served (services/stripping.py, the one code path
        that ``berkas files upgrade --strip`` shares)."""
        copy = stripping.strip_for_storage(
            spool.path,
            info,
            category=target.category.value,
            keep_metadata=self._keep_metadata,
            label=target.label,
            limits=self._limits,
            derive=lambda write: self._derive(derived, write),
        )
        if copy is None:
            return Body(spool.path, spool.size, spool.sha256), info
        return Body(copy.path, copy.size, copy.sha256, removed=copy.removed), copy.info

    def _seal(self, body: Body, derived: list[Path]) -> Body:
        """``body`` encrypted under a fresh data key when at-rest encryption is on."""
        if self._data_keys is None:
            return body
        key = envelope.new_data_key()
        sealed, _ = self._derive(derived, lambda dst: envelope.encrypt_file(body.path, dst, key))
        return Body(sealed, body.size, body.sha256, key, body.removed)

    def _derive(self, derived: list[Path], write: Callable[[Path], _T]) -> tuple[Path, _T]:
        return derive(self._spool_dir, derived, write)

    def _commit(
        self,
        client: Client,
        target: UploadTarget,
        body: Body,
        info: content.ContentInfo,
        caller: Caller,
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
                self._blobs.put_file(key, body.path, info.kind.mime)
            except Conflict:
                if last or not body.path.exists():
                    raise
                continue
            except BerkasError:
                # A store that failed (a full disk, an outage) may still have linked the
                # bytes before failing: remove them, then the intent, as for a failed row.
                if _quietly(self._blobs.delete, key):
                    _quietly(self._files.release_key, key)
                raise
            stored = StoredFile(
                id=minted.id,
                client_id=client.client_id,
                category=target.category.value,
                code=target.code.value if target.code else None,
                key=key,
                content_type=info.kind.mime,
                size=body.size,
                sha256=body.sha256,
                width=info.width,
                height=info.height,
                created_at=(created := self._clock.now()),
                retained_until=_plus(created, self._retention(target.category.value)),
                metadata_removed=body.removed,
            )
            stored = replace(stored, data_key=self._wrap(body.data_key, stored))
            # The audit trail's first event, committed with the row (docs/design.md 6.3).
            uploaded = caller.event(stored, EventKind.UPLOADED, stored.created_at)
            try:
                self._files.add(stored, uploaded)
            except BaseException as exc:
                # The row is the commit point: without it the blob is garbage (docs/design.md 5.5).
                if _quietly(self._blobs.delete, key):
                    _quietly(self._files.release_key, key)
                if isinstance(exc, Conflict) and not last and body.path.exists():
                    continue
                raise
            return UploadResult(stored=stored, link=self._links.issue(stored))
        raise AssertionError("unreachable")  # pragma: no cover

    def _wrap(self, key: bytes | None, stored: StoredFile) -> str | None:
        # Bound to the row as it is stored (id, owner, object key, link generation): the
        # wrapped key opens for this row only, and only while none of them is changed.
        if key is None or self._data_keys is None:
            return None
        return self._data_keys.wrap(key, stored.binding)

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


def _plus(moment: datetime, span: timedelta | None) -> datetime | None:
    return None if span is None else moment + span


def _quietly(action: Callable[[str], None], key: str) -> bool:
    try:
        action(key)
    except BerkasError as exc:
        # Left for recover_orphans at the next start: the key is still reserved. Usually
        # the store or database is down (the upload's own answer says so): one line,
        # no traceback, as for every other outage.
        log.warning(
            "cleanup after a failed upload did not complete; the next start finishes it: %s (%s)",
            exc.message,
            exc.code,
        )
        return False
    return True
