"""Reading stored files back: metadata with a fresh link, and bytes behind a link."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from berkas.core import envelope
from berkas.core.codes import Code
from berkas.core.envelope import EnvelopeError
from berkas.core.errors import BerkasError, Conflict, NotFound
from berkas.core.ids import is_file_id
from berkas.core.listing import FileFilter, ListQuery
from berkas.core.models import (
    HOUSEKEEPING,
    Caller,
    Client,
    EventKind,
    FileEvent,
    StoredFile,
    file_on_hold,
)
from berkas.core.ports import AuditLog, BlobStore, Clock, DataKeys, FileRepository, PathBlobStore
from berkas.core.wire import iso8601
from berkas.services.documents import DocumentStore
from berkas.services.limits import RefusalEvents
from berkas.services.links import IssuedLink, LinkService
from berkas.services.listing import FileListing, FilePage

log = logging.getLogger(__name__)

# The events after which an id is gone for good: a repeated DELETE by its owner is then
# answered as the first was (idempotent, RFC 9110 section 9.2.2).
_GONE = frozenset({EventKind.DELETED, EventKind.RETENTION_EXPIRED})
# A revoke that loses the race to another revoke of the same file reads it again; each
# loss means another revoke succeeded, so a few rounds always suffice in practice.
_REVOKE_ATTEMPTS = 5
# Partner calls from code that has no request (tests, the SDK's in-process transport).
_NOBODY = Caller()
# The pieces a download hands the server. Starlette's StreamingResponse runs each next()
# of a sync iterator on a worker thread (iterate_in_threadpool) and sends each piece as
# one body message, one socket write: a 5 MB document in 64 KiB pieces costs 80 thread
# hops and writes, in 512 KiB ones 10.
SEND_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Download:
    """What a link opens: the row, its bytes in pieces and, when the store keeps them as
    sent in one local file, that file (the server may then send it by path)."""

    stored: StoredFile
    chunks: Iterator[bytes]
    path: Path | None = None


@dataclass(frozen=True, slots=True)
class FileView:
    stored: StoredFile
    link: IssuedLink


class FileService:
    """A partner sees only its own files; a link holder sees exactly one object."""

    def __init__(
        self,
        files: FileRepository,
        blobs: BlobStore,
        links: LinkService,
        *,
        events: AuditLog,
        clock: Clock,
        node_id: int,
        data_keys: DataKeys | None = None,
        refusals: RefusalEvents | None = None,
    ) -> None:
        self._files = files
        self._refusals = refusals if refusals is not None else RefusalEvents()
        # Opens documents stored encrypted; also after encryption was switched off, so
        # the rows that carry a data key stay readable.
        self._data_keys = data_keys
        self._blobs = blobs
        self._links = links
        self._events = events
        self._clock = clock
        # The delete's blob half: the row, its object and the intent between them.
        self._documents = DocumentStore(files=files, blobs=blobs, clock=clock, node_id=node_id)
        self._listing = FileListing(files)

    def list_own(self, client: Client, query: ListQuery) -> FilePage:
        """One page of ``client``'s own files, newest first (``GET /files``,
        docs/design.md 3.5); no link is issued, so nothing is recorded."""
        return self._listing.page(client.client_id, query)

    def list_any(self, client_id: str | None, match: FileFilter) -> Iterator[StoredFile]:
        """Every file of ``client_id`` (None: every client's) that ``match``es, newest
        first, a page at a time (``berkas files list``)."""
        return self._listing.each(client_id, match)

    def inspect(self, file_id: str) -> tuple[StoredFile | None, list[FileEvent]]:
        """The operator's view of any file (``berkas files show``): its row (None once
        deleted) and its audit trail; ``NotFound`` when neither exists."""
        stored = self._files.get(file_id)
        trail = self._events.for_file(file_id)
        if stored is None and not trail:
            raise NotFound(f"No file with id {file_id!r}.", code=Code.FILE_NOT_FOUND)
        return stored, trail

    def describe(self, client: Client, file_id: str, caller: Caller = _NOBODY) -> FileView:
        """Metadata and a fresh link; 404 for ids that are absent or not this client's.
        The audit trail records it (a ``described`` event: a link was issued) before the
        answer goes out."""
        stored = self._owned(client, file_id)
        view = FileView(stored=stored, link=self._links.issue(stored))
        self._record(stored, EventKind.DESCRIBED, caller, iso8601(view.link.expires_at))
        return view

    def events(self, client: Client, file_id: str) -> list[FileEvent]:
        """The audit trail of one of ``client``'s files, oldest first; also after it was
        deleted (by its owner, the operator or retention). 404 otherwise."""
        stored = self._files.get(file_id)
        if stored is None:
            if self._gone_for(client, file_id) is None:
                raise _missing(file_id)
        else:
            self._owned(client, file_id, stored)
        return self._events.for_file(file_id)

    def export_events(
        self, *, since: datetime | None = None, client_id: str | None = None, page: int = 1000
    ) -> Iterator[FileEvent]:
        """Every audit event at or after ``since`` of ``client_id`` (None: all), oldest
        first (``berkas audit export``); read a page at a time, so memory stays flat."""
        after = 0
        while batch := self._events.export(
            since=since, client_id=client_id, after_id=after, limit=page
        ):
            yield from batch
            after = max(event.id or 0 for event in batch)
            if len(batch) < page:
                return

    def _record(
        self, stored: StoredFile, kind: EventKind, caller: Caller, detail: str | None = None
    ) -> None:
        self._events.append(caller.event(stored, kind, self._clock.now(), detail))

    def delete(self, client: Client, file_id: str, caller: Caller = _NOBODY) -> None:
        """Remove the row and the bytes of one of ``client``'s files (docs/design.md 6.1).

        The row goes first, with its audit event and an intent record for the blob, in
        one transaction: from that commit on no link opens it. The bytes go next; if the
        store fails then, the intent stays and the node's next start removes them
        (``UploadService.recover_orphans``). Deleting an id this client already deleted
        succeeds again; another partner's id, or one never stored, is 404. A document on
        legal hold is refused (409 ``file_on_hold``).
        """
        stored = self._files.get(file_id)
        if stored is None:
            if self._gone_for(client, file_id) is None:
                raise _missing(file_id)
            return  # deleted before by this client: the same answer again
        self._remove(self._owned(client, file_id, stored), "partner", caller)

    def delete_any(self, file_id: str, caller: Caller = _NOBODY) -> StoredFile:
        """The operator's delete (``berkas files delete``): any partner's file, recorded
        as the operator's, naming ``caller.actor``; ``NotFound`` when there is no such
        file, ``Conflict`` (``file_on_hold``) while it is on legal hold."""
        stored = self._files.get(file_id)
        if stored is None:
            raise NotFound(f"No file with id {file_id!r}.", code=Code.FILE_NOT_FOUND)
        self._remove(stored, "operator", caller)
        return stored

    def expire(self, by: str, batch: int = 100) -> int:
        """Remove the documents whose retention has ended and that are not on legal hold
        (housekeeping, under its cluster-wide lease); returns how many."""
        removed = 0
        held: set[str] = set()
        while due := [s for s in self._files.expired(self._clock.now(), batch) if s.id not in held]:
            for stored in due:
                try:
                    self._remove(stored, by, HOUSEKEEPING, EventKind.RETENTION_EXPIRED)
                except Conflict:
                    held.add(stored.id)  # put on hold since it was listed: kept
                    continue
                removed += 1
            if len(due) < batch:
                break
        return removed

    def set_hold(self, file_id: str, hold: bool, caller: Caller = _NOBODY) -> StoredFile:
        """The operator's legal hold (``berkas files hold``/``release``): while on hold a
        document is deleted by nobody (partner, operator, retention); the event names
        ``caller.actor``. ``NotFound`` when there is no such file."""
        stored = self._files.get(file_id)
        kind = EventKind.HOLD_SET if hold else EventKind.HOLD_RELEASED
        if stored is None or not self._files.set_hold(
            file_id, hold, caller.event(stored, kind, self._clock.now())
        ):
            raise NotFound(f"No file with id {file_id!r}.", code=Code.FILE_NOT_FOUND)
        return replace(stored, legal_hold=hold)

    def _remove(
        self, stored: StoredFile, by: str, caller: Caller, kind: EventKind = EventKind.DELETED
    ) -> None:
        if stored.legal_hold:
            raise file_on_hold(stored.id)
        event = caller.event(stored, kind, self._clock.now(), by)
        self._documents.remove(stored, event)

    def revoke_links(self, client: Client, file_id: str, caller: Caller = _NOBODY) -> FileView:
        """Make every proxy link issued so far fail (403 ``link_revoked``); the answer
        carries a fresh link, and new links work as before. Presigned links are the
        store's own URLs and cannot be recalled: they live out their lifetime."""
        stored = self._owned(client, file_id)
        event = caller.event(stored, EventKind.LINKS_REVOKED, self._clock.now())
        for _ in range(_REVOKE_ATTEMPTS):
            current = replace(stored, link_generation=stored.link_generation + 1)
            # The data key is bound to the link generation: rewrapped for the new one in
            # the same transaction, so a database writer who sets the generation back
            # (to revive the revoked links) is left with a key that no longer opens.
            data_key = self._rewrap(stored, current)
            generation = self._files.revoke_links(
                stored.id, event, generation=stored.link_generation, data_key=data_key
            )
            if generation is not None:
                current = replace(current, data_key=data_key or stored.data_key)
                return FileView(stored=current, link=self._links.issue(current))
            # Deleted meanwhile, or revoked by a concurrent call: read it again.
            stored = self._owned(client, file_id)
        raise Conflict(
            f"The links of {file_id!r} are being revoked by other requests; retry.",
            code=Code.REQUEST_IN_PROGRESS,
        )

    def _rewrap(self, stored: StoredFile, moved: StoredFile) -> str | None:
        if stored.data_key is None:
            return None
        if self._data_keys is None:
            raise _unreadable(stored, "this node was started without its data keys")
        key = self._data_keys.unwrap(stored.data_key, stored.binding)
        return self._data_keys.wrap(key, moved.binding)

    def _gone_for(self, client: Client, file_id: str) -> FileEvent | None:
        """The event that deleted ``client``'s file ``file_id``, if it did."""
        return next(
            (
                e
                for e in self._events.for_file(file_id)
                if e.kind in _GONE and e.client_id == client.client_id
            ),
            None,
        )

    def _owned(self, client: Client, file_id: str, stored: StoredFile | None = None) -> StoredFile:
        if stored is None:
            stored = self._files.get(file_id)
        if stored is None and is_file_id(file_id) and (gone := self._gone_for(client, file_id)):
            # Its owner may hear what its own audit trail says anyway.
            by = "retention" if gone.kind is EventKind.RETENTION_EXPIRED else gone.detail
            raise NotFound(
                f"File {file_id!r} was deleted at {iso8601(gone.at)} (by {by or 'its owner'}); "
                f"its audit trail stays at GET /file/{file_id}/events.",
                code=Code.FILE_NOT_FOUND,
            )
        # Another partner's id answers exactly like a missing one: existence is not revealed.
        if stored is None or stored.client_id != client.client_id:
            raise _missing(file_id)
        return stored

    def open_link(
        self,
        key: str,
        expires: str,
        signature: str,
        caller: Caller = _NOBODY,
    ) -> tuple[StoredFile, Iterator[bytes]]:
        """Check the link, then stream the exact stored bytes (``download``'s row and
        pieces)."""
        opened = self.download(key, expires, signature, caller)
        return opened.stored, opened.chunks

    def download(
        self, key: str, expires: str, signature: str, caller: Caller = _NOBODY
    ) -> Download:
        """Check the link, then open the exact stored bytes (docs/design.md 6.2, 6.3).

        The signature is checked first, reading nothing: a forged link is refused
        (``link_invalid``) before the database is asked about its key, so the answer's
        timing does not tell whether the key exists, and it leaves no event. Only a
        genuine link reads the row: its link generation decides revoked or not. A genuine
        link refused (expired, revoked) leaves a ``link_refused`` event, bounded per
        file and address (``RefusalEvents``); an opened one a ``link_opened`` event,
        committed before the answer goes out (fail-closed: no event, no bytes).
        """
        link = self._links.authenticate(key, expires, signature)
        stored = self._files.get_by_key(key)
        refused = self._links.refusal(link, None if stored is None else stored.link_generation)
        if refused is not None:
            if stored is not None and self._refusals.admit(stored.id, caller.ip, refused.code):
                self._record(stored, EventKind.LINK_REFUSED, caller, refused.code)
            raise refused
        if stored is None:
            raise NotFound("The linked file no longer exists.", code=Code.FILE_NOT_FOUND)
        path = None
        if stored.data_key is None and isinstance(self._blobs, PathBlobStore):
            path = self._blobs.path_of(key)
        chunks = self._plaintext(stored)
        self._record(stored, EventKind.LINK_OPENED, caller)
        return Download(stored, chunks, path)

    def _plaintext(self, stored: StoredFile) -> Iterator[bytes]:
        """The document's bytes: the stored ones, or the envelope's plaintext.

        The first chunk is opened here, before any answer: a wrong key or an altered
        header is a clean 500 ``file_unreadable``, not a cut connection. Past it, each
        chunk is served only once its tag checks; a later bad chunk ends the stream
        early, short of its Content-Length, so no client takes it for the whole file.
        """
        if stored.data_key is None:
            return self._blobs.open(stored.key, SEND_BYTES)
        if self._data_keys is None:
            raise _unreadable(stored, "this node was started without its data keys")
        data_key = self._data_keys.unwrap(stored.data_key, stored.binding)
        # The header, then one sealed chunk per read: decrypt opens each piece as read,
        # with no re-cutting (a 64 KiB read would straddle every chunk's 16-byte tag).
        sealed = self._blobs.open(
            stored.key, envelope.sealed_chunk_bytes(), first_size=envelope.HEADER_BYTES
        )
        plain = envelope.decrypt(sealed, data_key)
        try:
            first = next(plain, b"")
        except EnvelopeError as exc:
            raise _unreadable(stored, str(exc)) from None
        return _logged(stored, first, plain)


def _missing(file_id: str) -> NotFound:
    shown = repr(file_id) if is_file_id(file_id) else "of that form"
    return NotFound(
        f"No file with id {shown}; ids look like DCM-0001-1732700000000.",
        code=Code.FILE_NOT_FOUND,
    )


def _unreadable(stored: StoredFile, why: str) -> BerkasError:
    log.error("stored file %s (%s) cannot be served: %s", stored.id, stored.key, why)
    return BerkasError(
        f"the stored file {stored.id} fails its integrity check; nothing was served.",
        code=Code.FILE_UNREADABLE,
    )


def _logged(stored: StoredFile, first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    # The first chunk goes alone (it was opened before the answer); the rest in pieces
    # of about SEND_BYTES, each one only of chunks that passed their tags.
    yield first
    gathered: list[bytes] = []
    size = 0
    try:
        for chunk in rest:
            gathered.append(chunk)
            size += len(chunk)
            if size >= SEND_BYTES:
                yield b"".join(gathered)
                gathered, size = [], 0
    except EnvelopeError as exc:
        # Headers are sent: the server can only cut the response short (RFC 9112
        # section 8: a body shorter than Content-Length is incomplete). What passed its
        # tags goes first, so the body stops at the last chunk that authenticated.
        _unreadable(stored, str(exc))
        if gathered:
            yield b"".join(gathered)
        raise
    if gathered:
        yield b"".join(gathered)
