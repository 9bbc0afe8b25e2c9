"""The one owner of a document's bytes and its row together (docs/design.md 5.5).

Storing, removing and recovering a document each touch two systems that cannot share a
transaction: the blob store and the database. Every rule that keeps them in step lives
here, so the upload use case, ``FileService``'s delete and ``berkas files upgrade`` ask
for an outcome and never order the steps themselves:

- **Store, on a store that stages** (local disk, memory): the bytes go to a durable
  staging name first (fsynced, not yet at their key); then the row, its ``uploaded``
  event and the duplicate lookup commit as one unit (one group commit); then the staged
  bytes are published at their key. A crash before the commit leaves a staged file no row
  names, which the next start drops; a crash after it leaves a row whose bytes are still
  staged, which the next start publishes. Nothing is acknowledged before the publish, and
  the database sees one durable round per upload.
- **Store, on a store that cannot stage** (S3: no rename, and a PUT is visible at once):
  an intent names the key before its bytes are written, then the row, event and lookup
  commit as one unit that also drops the intent. A crash between the PUT and the commit
  leaves the intent, and the next start removes the object no row names. Two rounds: the
  price of a store whose write cannot be undone by a rename.
- **Remove**: the row goes and the key is reserved in one transaction, then the object,
  then the reservation; a crash in between leaves the reservation, and the next start
  removes the object.
- **Recover** (at start, before serving): both of the above, finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from berkas.core import content
from berkas.core.catalogue import Category
from berkas.core.codes import Code
from berkas.core.errors import BerkasError, Conflict, Unavailable
from berkas.core.ids import IdMinter, node_of
from berkas.core.models import Caller, Client, EventKind, FileEvent, StoredFile
from berkas.core.ports import BlobStore, Clock, DataKeys, FileRepository, StagingBlobStore
from berkas.services.upload_types import Body, UploadTarget

log = logging.getLogger(__name__)

# An id or key collision can only follow a clock step backwards across a restart; a
# couple of fresh mints always clear it.
_MINT_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """How a node names what it stores: DOKU's object key layout and its id minter."""

    minter: IdMinter
    key_prefix: str
    env: str
    node_id: int

    def key(self, client: Client, category: Category, epoch_ms: int, kind: content.Kind) -> str:
        # DOKU's layout <prefix>/<env>/TEMP/<businessServiceClientId>/<category>/<epoch ms>.<ext>,
        # with the node number added so two nodes minting in the same millisecond differ.
        return (
            f"{self.key_prefix}/{self.env}/TEMP/{client.client_id}/{category.value}/"
            f"{epoch_ms}-{self.node_id:04d}.{kind.extension}"
        )


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A stored file, and the earlier file of its owner with the same bytes, if any."""

    stored: StoredFile
    duplicate_of: str | None


class DocumentStore:
    """Stores, removes and recovers documents: blob and row kept in step."""

    def __init__(
        self,
        *,
        files: FileRepository,
        blobs: BlobStore,
        clock: Clock,
        node_id: int,
        layout: KeyLayout | None = None,
        data_keys: DataKeys | None = None,
        retention: Callable[[str], timedelta | None] = lambda category: None,
    ) -> None:
        self._files = files
        self._blobs = blobs
        # Chosen once: whether this store can hold bytes under a staging name.
        self._staging = blobs if isinstance(blobs, StagingBlobStore) else None
        self._clock = clock
        self._node_id = node_id
        self._layout = layout  # None: this store never mints (files upgrade, admin verbs)
        self._data_keys = data_keys
        self._retention = retention  # per category; None keeps until deleted

    @property
    def node_id(self) -> int:
        """The node number this store's ids and pending records carry."""
        return self._node_id

    # --- reads the upload use case needs --------------------------------------------------

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def duplicate_of(self, client_id: str, category: str, sha256: str) -> str | None:
        """The first file ``client_id`` stored in ``category`` with these bytes."""
        return self._files.duplicate_of(client_id, category, sha256)

    # --- store ------------------------------------------------------------------------------

    def store(
        self,
        client: Client,
        target: UploadTarget,
        body: Body,
        info: content.ContentInfo,
        caller: Caller,
    ) -> StoredDocument:
        """Store ``body`` (which the store may move) as a new file of ``client``.

        Raises ``Unavailable`` (``id_allocation_failed``) when fresh ids kept colliding,
        and whatever the store or the database raised, having left nothing behind (or, if
        the cleanup itself failed, what the next start removes).
        """
        if self._layout is None:
            raise RuntimeError("this DocumentStore was built without a key layout")
        for attempt in range(_MINT_ATTEMPTS):
            last = attempt + 1 == _MINT_ATTEMPTS
            minted = self._layout.minter.mint(target.category.id_prefix)
            key = self._layout.key(client, target.category, minted.epoch_ms, info.kind)
            stored = self._row(client, target, body, info, file_id=minted.id, key=key)
            uploaded = caller.event(stored, EventKind.UPLOADED, stored.created_at)
            try:
                if self._staging is not None:
                    earlier = self._staged(self._staging, stored, uploaded, body.path)
                else:
                    earlier = self._reserved(stored, uploaded, body.path)
            except Conflict as exc:
                if last or not body.path.exists():
                    raise Unavailable(
                        "could not allocate a unique file id; retry the upload.",
                        code=Code.ID_ALLOCATION_FAILED,
                    ) from exc
                continue
            return StoredDocument(stored, earlier)
        raise AssertionError("unreachable")  # pragma: no cover

    def _row(
        self,
        client: Client,
        target: UploadTarget,
        body: Body,
        info: content.ContentInfo,
        *,
        file_id: str,
        key: str,
    ) -> StoredFile:
        created = self._clock.now()
        span = self._retention(target.category.value)
        stored = StoredFile(
            id=file_id,
            client_id=client.client_id,
            category=target.category.value,
            code=target.code.value if target.code else None,
            key=key,
            content_type=info.kind.mime,
            size=body.size,
            sha256=body.sha256,
            width=info.width,
            height=info.height,
            created_at=created,
            retained_until=None if span is None else created + span,
            metadata_removed=body.removed,
        )
        # Bound to the row as it is stored (id, owner, object key, link generation): the
        # wrapped key opens for this row only, and only while none of them is changed.
        if body.data_key is None or self._data_keys is None:
            return stored
        return replace(stored, data_key=self._data_keys.wrap(body.data_key, stored.binding))

    def _staged(
        self, staging: StagingBlobStore, stored: StoredFile, event: FileEvent, path: Path
    ) -> str | None:
        """Stage, commit the row, publish: one durable round (module docstring)."""
        staging.stage(stored.id, path)
        try:
            earlier = self._files.add(stored, event)
        except Conflict:
            # The id or key is taken (a clock step back): the bytes go back to ``path``
            # for the next mint.
            staging.unstage(stored.id, path)
            raise
        except BaseException:
            _quietly(staging.drop_staged, stored.id)
            raise
        try:
            staging.publish(stored.id, stored.key)
        except BerkasError:
            # The row is committed and its bytes are staged: the next start publishes them.
            # This request fails all the same, since the download would not work yet.
            log.warning("%s is committed but not yet published; the next start does it", stored.id)
            raise
        return earlier

    def _reserved(self, stored: StoredFile, event: FileEvent, path: Path) -> str | None:
        """Intent, PUT, then the row with the intent dropped (module docstring)."""
        self._files.reserve_key(stored.key, self._node_id, self._clock.now())
        try:
            self._blobs.put_file(stored.key, path, stored.content_type)
        except Conflict:
            raise  # someone else's object: never removed; the intent goes at the next start
        except BerkasError:
            # A store that failed (a full disk, an outage) may still have written the
            # bytes before failing: remove them, then the intent, as for a failed row.
            self.forget(stored.key)
            raise
        try:
            return self._files.add(stored, event)
        except BaseException as exc:
            # The row is the commit point: without it the blob is garbage.
            if isinstance(exc, Conflict) and not path.exists():
                # The PUT consumed the spool: put the bytes back for the next mint.
                _take_back(self._blobs, stored.key, path)
            self.forget(stored.key)
            raise

    # --- writes of files upgrade --------------------------------------------------------------

    def put(self, key: str, path: Path, content_type: str, node_id: int) -> None:
        """Write ``path`` under a new ``key`` behind an intent of ``node_id``: for a row
        that is changed to name it afterwards (``berkas files upgrade``). ``Conflict``
        when the key holds another object (left alone)."""
        self._files.reserve_key(key, node_id, self._clock.now())
        try:
            self._blobs.put_file(key, path, content_type)
        except Conflict:
            raise
        except BerkasError:
            self.forget(key)
            raise

    def forget(self, key: str) -> None:
        """Remove an object no row names, then its intent; left to the next start's
        recovery when the store or the database is down (logged, not raised)."""
        if _quietly(self._blobs.delete, key):
            _quietly(self._files.release_key, key)

    # --- remove -----------------------------------------------------------------------------

    def remove(self, stored: StoredFile, event: FileEvent) -> StoredFile | None:
        """Delete the row (with ``event``), then its object. None when the row was gone
        already (a concurrent delete); ``Conflict`` (``file_on_hold``) while on hold. An
        object the store would not delete now is left under an intent for the next start.
        """
        # The repository deletes only a row not on hold, in the same statement: a hold
        # set after the caller's read still wins.
        removed = self._files.remove(stored.id, self._node_id, event)
        if removed is None:
            return None
        try:
            self._blobs.delete(removed.key)
        except BerkasError as exc:
            log.warning(
                "file %s deleted, its bytes not yet (the next start removes them): %s (%s)",
                removed.id,
                exc.message,
                exc.code,
            )
            return removed
        self._files.release_key(removed.key)
        return removed

    # --- recover ----------------------------------------------------------------------------

    def recover(self, node_id: int | None = None) -> int:
        """Finish what a crash of ``node_id`` (this node's by default) cut short: remove
        objects whose row never committed or was deleted, and release their intents.
        Returns how many objects were removed. Not safe while that node serves."""
        node = self._node_id if node_id is None else node_id
        removed = 0
        for key in self._files.reserved_keys(node):
            if self._files.get_by_key(key) is None:
                self._blobs.delete(key)
                removed += 1
            self._files.release_key(key)
        return removed

    def recover_staged(self, node_id: int | None = None) -> tuple[int, int]:
        """At a serving node's start: publish staged bytes whose row committed, drop the
        rest. Returns (published, dropped). With ``node_id``, only bytes staged under ids
        that number minted (a staged file is named by its file id): a restarted worker
        (docs/design.md 5.6) clears what it left while the node's other workers serve."""
        if self._staging is None:
            return 0, 0
        published = dropped = 0
        for name in self._staging.staged():
            if node_id is not None and node_of(name) != node_id:
                continue
            row = self._files.get(name)
            if row is None:
                self._staging.drop_staged(name)
                dropped += 1
            else:
                self._staging.publish(name, row.key)
                published += 1
        return published, dropped


def _take_back(blobs: BlobStore, key: str, path: Path) -> None:
    with path.open("wb") as out:
        for piece in blobs.open(key):
            out.write(piece)


def _quietly(action: Callable[[str], None], key: str) -> bool:
    try:
        action(key)
    except BerkasError as exc:
        # Left for the next start's recovery: the key is still reserved, or the bytes
        # still staged. Usually the store or database is down (the request's own answer
        # says so): one line, no traceback, as for every other outage.
        log.warning(
            "cleanup after a failed write did not complete; the next start finishes it: %s (%s)",
            exc.message,
            exc.code,
        )
        return False
    return True
