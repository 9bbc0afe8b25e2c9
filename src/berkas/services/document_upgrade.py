"""One stored document brought up to the policy for ``berkas files upgrade``: read back
and checked, stripped, sealed, written under a new key and the row swapped to it (the
crash rules are in services/upgrade.py's docstring)."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from berkas.core import content, envelope
from berkas.core.codes import Code
from berkas.core.errors import BerkasError, UnsupportedContent
from berkas.core.models import EventKind, FileEvent, StoredFile
from berkas.core.object_keys import key_problem
from berkas.core.ports import BlobStore, Clock, DataKeys, FileRepository
from berkas.services import stripping
from berkas.services.documents import DocumentStore
from berkas.services.spool import derive

log = logging.getLogger(__name__)

# The suffix a rewrite adds to an object key's name: "-u<epoch ms>-<node>", replaced (not
# stacked) when a document is rewritten again.
_REWRITTEN = re.compile(r"-u\d+-\d{4}$")
_KINDS = {kind.mime: kind for kind in content.Kind}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Plain:
    path: Path
    head: bytes


class DocumentUpgrader:
    """Rewrites (or marks checked) one document at a time for an ``UpgradeService`` run,
    under the run's node number (``node_id``) and naming its ``actor`` in each event."""

    def __init__(
        self,
        *,
        files: FileRepository,
        blobs: BlobStore,
        documents: DocumentStore,
        clock: Clock,
        spool_dir: Path,
        data_keys: DataKeys,
        encrypt: bool,
        keep_metadata: frozenset[str],
        image_limits: content.ImageLimits,
    ) -> None:
        self._files = files
        self._blobs = blobs  # read back from; written through ``documents``
        self._documents = documents
        self._clock = clock
        self._spool_dir = spool_dir
        self._data_keys = data_keys  # opens encrypted documents; wraps new data keys
        self._encrypt = encrypt  # BERKAS_ENCRYPT_AT_REST: documents in clear get encrypted
        self._keep_metadata = keep_metadata
        self._limits = image_limits
        # Set by the run: the node number it leased, and who acts.
        self.node_id: int | None = None
        self.actor: str | None = None
        self._last_ms = 0

    def upgrade(self, stored: StoredFile, strip: bool) -> tuple[str, ...] | None:
        """What was done to ``stored`` (``()``: nothing was due), or None when a
        concurrent change won the swap and nothing was changed."""
        encrypt = self._encrypt and stored.data_key is None
        # A document on legal hold is evidence: its bytes are never changed. Encrypting
        # leaves the bytes it serves as they are, so that still happens.
        strip = strip and not stored.metadata_checked and not stored.legal_hold
        if not encrypt and not strip:
            return ()
        derived: list[Path] = []
        try:
            plain = self._plaintext(stored, derived)
            upgraded, body = stored, plain.path
            actions: list[str] = []
            if strip:
                upgraded, body, actions = self._strip(stored, plain, derived)
            rewrite = encrypt or body != plain.path
            if not rewrite:
                event = self._event(stored, actions)
                swapped = self._files.upgrade(stored, upgraded, self.node_id or 0, event)
                return tuple(actions) if swapped else None
            if encrypt:
                actions.insert(0, "encrypted")
            return (
                tuple(actions) if self._rewrite(stored, upgraded, body, actions, derived) else None
            )
        finally:
            for path in derived:
                path.unlink(missing_ok=True)

    def _plaintext(self, stored: StoredFile, derived: list[Path]) -> _Plain:
        """The document's bytes in a scratch file, checked against the row's sha256."""
        chunks = self._blobs.open(stored.key)
        if stored.data_key is not None:
            key = self._data_keys.unwrap(stored.data_key, stored.binding)
            chunks = envelope.decrypt(chunks, key)
        digest = hashlib.sha256()
        size = 0
        head = b""

        def write(path: Path) -> None:
            nonlocal size, head
            with path.open("wb") as out:
                for piece in chunks:
                    if len(head) < content.SNIFF_BYTES:
                        head += piece[: content.SNIFF_BYTES - len(head)]
                    digest.update(piece)
                    size += len(piece)
                    out.write(piece)

        path, _ = self._derive(derived, write)
        if (size, digest.hexdigest()) != (stored.size, stored.sha256):
            # Sealing bytes the row does not vouch for would make them look authentic.
            raise BerkasError(
                f"the stored object of {stored.id} does not match its recorded size and "
                "sha256; it was left as it is.",
                code=Code.FILE_UNREADABLE,
            )
        return _Plain(path, head)

    def _strip(
        self, stored: StoredFile, plain: _Plain, derived: list[Path]
    ) -> tuple[StoredFile, Path, list[str]]:
        """The metadata policy, applied as at upload (services/stripping.py)."""
        kind = _KINDS.get(stored.content_type)
        if kind is None:
            raise UnsupportedContent(
                f"{stored.id} has content type {stored.content_type!r}, not one berkas stores",
                code=Code.UNSUPPORTED_TYPE,
            )
        label = stored.category if stored.code is None else f"{stored.category}/{stored.code}"
        checked = replace(stored, metadata_checked=True)
        if kind is content.Kind.PDF or stored.category in self._keep_metadata:
            return checked, plain.path, ["checked"]
        # Read as any upload is before it is stripped: the stripper walks parsed images.
        info = content.inspect(
            plain.path,
            head=plain.head,
            size=stored.size,
            allowed=frozenset({kind}),
            label=label,
            limits=self._limits,
        )
        copy = stripping.strip_for_storage(
            plain.path,
            info,
            category=stored.category,
            keep_metadata=self._keep_metadata,
            label=label,
            limits=self._limits,
            derive=lambda write: self._derive(derived, write),
        )
        if copy is None:
            return checked, plain.path, ["checked"]
        stripped = replace(
            checked,
            size=copy.size,
            sha256=copy.sha256,
            width=copy.info.width,
            height=copy.info.height,
            metadata_removed=copy.removed,
        )
        return stripped, copy.path, [f"stripped {','.join(copy.removed)}"]

    def _rewrite(
        self,
        stored: StoredFile,
        upgraded: StoredFile,
        body: Path,
        actions: list[str],
        derived: list[Path],
    ) -> bool:
        """Write ``body`` under a new key (sealed when the document is to be encrypted),
        swap the row to it, then remove the old object. False: a concurrent change won."""
        node_id = self.node_id if self.node_id is not None else 0
        data_key: bytes | None = None
        if self._encrypt or stored.data_key is not None:
            # Encrypted ones stay encrypted (BERKAS_ENCRYPT_AT_REST=false included).
            data_key = envelope.new_data_key()
            body, _ = self._derive(derived, _sealer(body, data_key))
        upgraded = replace(upgraded, key=self._new_key(stored))
        if data_key is not None:
            upgraded = replace(upgraded, data_key=self._data_keys.wrap(data_key, upgraded.binding))
        else:
            upgraded = replace(upgraded, data_key=None)
        # The intent first (DocumentStore.put): a crash between the write and the swap
        # leaves it, and the next run (or the node with this number, at its start) removes
        # the object. A key that holds someone else's object raises Conflict, unremoved:
        # unreachable while node numbers are leased; ``recover`` judges the intent.
        self._documents.put(upgraded.key, body, stored.content_type, node_id)
        # A swap that raises may have committed all the same (a connection lost during
        # the commit): both objects stay, and the intents decide. Committed, the old key
        # is reserved and the row names the new one; not committed, the new key is still
        # reserved and no row names it. ``recover`` removes exactly the object no row names.
        swapped = self._files.upgrade(stored, upgraded, node_id, self._event(stored, actions))
        if not swapped:
            self._documents.forget(upgraded.key)
            return False
        # The row names the new object: the old one is garbage, under an intent (removed
        # now, or by the next run if the store will not).
        self._documents.forget(stored.key)
        return True

    def _new_key(self, stored: StoredFile) -> str:
        """The old key's name with ``-u<epoch ms>-<node>``: the same layout, unique
        because the node number is leased and the milliseconds only go up in a run."""
        now_ms = int(self._clock.now().timestamp() * 1000)
        self._last_ms = max(now_ms, self._last_ms + 1)
        head, dot, extension = stored.key.rpartition(".")
        if not dot:
            head, extension = stored.key, ""
        while True:
            name = _REWRITTEN.sub("", head) + f"-u{self._last_ms}-{self.node_id or 0:04d}"
            key = f"{name}.{extension}" if extension else name
            # The same number rewrote it in this very millisecond (or the clock stepped
            # back): the current key is never the new one.
            if key != stored.key:
                break
            self._last_ms += 1
        problem = key_problem(key)
        if problem is not None:
            raise BerkasError(
                f"no new object key can be made from {stored.key!r}: it {problem}",
                code=Code.API_ERROR,
            )
        return key

    def _event(self, stored: StoredFile, actions: list[str]) -> FileEvent:
        return FileEvent(
            file_id=stored.id,
            client_id=stored.client_id,
            kind=EventKind.UPGRADED,
            at=self._clock.now(),
            detail="; ".join(actions),
            actor=self.actor,
        )

    def _derive(self, derived: list[Path], write: Callable[[Path], _T]) -> tuple[Path, _T]:
        return derive(self._spool_dir, derived, write)


def _sealer(src: Path, key: bytes) -> Callable[[Path], None]:
    return lambda dst: envelope.encrypt_file(src, dst, key)
