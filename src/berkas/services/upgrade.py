"""``berkas files upgrade``: documents an older release stored, brought up to the current
policy (issue 20): retention stamped from upload time, documents in clear encrypted, and
metadata stripped when asked. Each document is its own unit; a rerun skips what is done.

A rewritten document gets a new object under a new key, written before the row moves to
it; the row moves in one conditional transaction, and only then is the old object
removed. Intents (``pending_blobs``) cover both objects, so a crash at any point leaves
the old document or the new one, and what ``recover`` removes at the next run (or at the
next start of a node with the node number the run leased).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from berkas.core import content, envelope
from berkas.core.codes import Code
from berkas.core.envelope import EnvelopeError
from berkas.core.errors import BerkasError, Conflict, is_disk_full
from berkas.core.ids import MAX_NODE
from berkas.core.models import EventKind, FileEvent, StoredFile
from berkas.core.object_keys import key_problem
from berkas.core.ports import BlobStore, Clock, DataKeys, FileRepository, TaskLeaseRepository
from berkas.services import stripping
from berkas.services.nodes import NodeLeases
from berkas.services.spool import disk_full, scratch

log = logging.getLogger(__name__)

# One upgrade at a time, fleet-wide: two runs would rewrite the same documents twice.
UPGRADE_TASK = "files-upgrade"
# The run's lease outlives its last renewal by this long; it renews before each document.
_TASK_TTL = timedelta(minutes=2)
# A row changed by a concurrent revoke is read again and tried again, this many times.
_ATTEMPTS = 3
_PAGE = 200
# The suffix a rewrite adds to an object key's name: "-u<epoch ms>-<node>", replaced (not
# stacked) when a document is rewritten again.
_REWRITTEN = re.compile(r"-u\d+-\d{4}$")
_KINDS = {kind.mime: kind for kind in content.Kind}
_T = TypeVar("_T")

Progress = Callable[[int, int | None], None]


@dataclass(slots=True)
class UpgradeReport:
    """What a run did: documents encrypted, stripped (bytes changed), checked (the
    metadata policy ran and left the bytes alone), files given a retention date, documents
    left as they were, and the ones that failed with why."""

    encrypted: int = 0
    stripped: int = 0
    checked: int = 0
    stamped: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """The one line ``berkas files upgrade`` prints."""
        return (
            f"encrypted {self.encrypted}, stripped {self.stripped}, checked {self.checked}, "
            f"stamped {self.stamped}, skipped {self.skipped}, failed {len(self.failed)}"
        )


@dataclass(frozen=True, slots=True)
class _Plain:
    path: Path
    head: bytes


class UpgradeBusy(Conflict):
    """Another ``berkas files upgrade`` holds the fleet-wide lease."""


class UpgradeService:
    """Brings stored documents up to the current policy (``berkas files upgrade``)."""

    def __init__(
        self,
        *,
        files: FileRepository,
        blobs: BlobStore,
        clock: Clock,
        tasks: TaskLeaseRepository,
        nodes: NodeLeases,
        holder: str,
        spool_dir: Path,
        data_keys: DataKeys,
        encrypt: bool,
        retention: Callable[[str], timedelta | None],
        keep_metadata: frozenset[str],
        image_limits: content.ImageLimits,
    ) -> None:
        self._files = files
        self._blobs = blobs
        self._clock = clock
        self._tasks = tasks
        self._nodes = nodes
        self._holder = holder
        self._spool_dir = spool_dir
        self._data_keys = data_keys  # opens encrypted documents; wraps new data keys
        self._encrypt = encrypt  # BERKAS_ENCRYPT_AT_REST: documents in clear get encrypted
        self._retention = retention
        self._keep_metadata = keep_metadata
        self._limits = image_limits
        self._node_id: int | None = None
        self._last_ms = 0
        self._renewed_at = clock.now()
        self._actor: str | None = None

    def pending(self, *, strip: bool) -> int:
        """How many documents a run would rewrite or check (not counting retention)."""
        backlog = self._files.backlog()
        total = backlog.in_clear if self._encrypt else 0
        if strip:
            total += backlog.unchecked - (backlog.in_clear_unchecked if self._encrypt else 0)
        return total

    def run(
        self,
        *,
        strip: bool = False,
        limit: int | None = None,
        progress: Progress | None = None,
        actor: str | None = None,
    ) -> UpgradeReport:
        """Stamp retention, then visit up to ``limit`` documents in id order: encrypt those
        in clear (when encryption at rest is on) and, with ``strip``, apply the metadata
        policy to those never checked; each ``upgraded`` event names ``actor``.
        ``UpgradeBusy`` when another run holds the lease."""
        self._actor = actor
        report = UpgradeReport()
        self._start()
        try:
            self.recover()
            report.stamped = self._stamp()
            total = self.pending(strip=strip)
            total = total if limit is None else min(total, limit)
            if progress is not None:
                progress(0, total)
            for visited, stored in enumerate(self._outdated(strip), start=1):
                if limit is not None and visited > limit:
                    break
                self._renew()
                self._one(stored, strip, report)
                if progress is not None:
                    progress(visited, max(total, visited))
        finally:
            self._stop()
        return report

    def recover(self) -> int:
        """Remove objects this run's node number reserved whose row never pointed at them
        (a crash between write and swap), and finish removals a crash cut short: the same
        rule as a node's start (``UploadService.recover_orphans``). Returns how many."""
        if self._node_id is None:
            raise RuntimeError("recover runs under the run's node lease")
        removed = 0
        for key in self._files.reserved_keys(self._node_id):
            if self._files.get_by_key(key) is None:
                self._blobs.delete(key)
                removed += 1
            self._files.release_key(key)
        if removed:
            log.warning("removed %d object(s) an interrupted upgrade left", removed)
        return removed

    # --- leases ----------------------------------------------------------------------

    def _start(self) -> None:
        now = self._clock.now()
        if not self._tasks.acquire(UPGRADE_TASK, self._holder, now + _TASK_TTL, now):
            raise UpgradeBusy(
                "another berkas files upgrade is running on this fleet; wait for it to end "
                f"(or, if it was killed, for its lease to lapse within {_minutes(_TASK_TTL)}) "
                "and run this again.",
                code=Code.REQUEST_IN_PROGRESS,
            )
        self._renewed_at = now
        try:
            # The highest free number: serving nodes take the lowest (BERKAS_NODE_ID=auto)
            # or a small fixed one, and one restarting meanwhile must find its own free.
            self._node_id = self._claim()
        except BaseException:
            self._tasks.release(UPGRADE_TASK, self._holder)
            raise

    def _claim(self) -> int:
        for candidate in range(MAX_NODE, -1, -1):
            try:
                return self._nodes.claim(candidate)
            except Conflict:
                continue
        raise Conflict("every node number is held by a live node.", code=Code.NODE_ID_TAKEN)

    def _renew(self) -> None:
        now = self._clock.now()
        if now - self._renewed_at < _TASK_TTL / 4:
            return
        self._renewed_at = now
        self._nodes.heartbeat()
        if not self._tasks.acquire(UPGRADE_TASK, self._holder, now + _TASK_TTL, now):
            raise UpgradeBusy(
                "this upgrade stalled past its lease and another run took over; it stopped "
                "(what it did is kept; the other run goes on).",
                code=Code.REQUEST_IN_PROGRESS,
            )

    def _stop(self) -> None:
        self._nodes.release()
        self._tasks.release(UPGRADE_TASK, self._holder)

    # --- retention -------------------------------------------------------------------

    def _stamp(self) -> int:
        stamped = 0
        now = self._clock.now()
        for category in sorted(self._files.backlog().without_retention):
            span = self._retention(category)
            if span is None:
                continue
            # To the second: SQL date arithmetic is exact in whole seconds on every backend.
            whole = timedelta(seconds=int(span.total_seconds()))
            stamped += self._files.stamp_retention(category, whole, now, self._actor)
        return stamped

    # --- documents -------------------------------------------------------------------

    def _outdated(self, strip: bool) -> Iterator[StoredFile]:
        after = ""
        while page := self._files.outdated(
            after=after, limit=_PAGE, in_clear=self._encrypt, unchecked=strip
        ):
            yield from page
            after = page[-1].id
            if len(page) < _PAGE:
                return

    def _one(self, stored: StoredFile, strip: bool, report: UpgradeReport) -> None:
        for _ in range(_ATTEMPTS):
            try:
                done = self._upgrade(stored, strip)
            except (BerkasError, EnvelopeError, OSError) as exc:
                why = f"{exc.message} ({exc.code})" if isinstance(exc, BerkasError) else str(exc)
                log.warning("%s was not upgraded, it stays as it was: %s", stored.id, why)
                report.failed.append((stored.id, why))
                return
            if done is not None:
                _count(report, done)
                return
            # The row changed under us: deleted (then there is nothing to do) or revoked
            # (then its new link generation is the one to bind the data key to).
            current = self._files.get(stored.id)
            if current is None or not self._needs(current, strip):
                report.skipped += 1
                return
            stored = current
        report.failed.append((stored.id, "changed by concurrent requests each time; run again"))

    def _needs(self, stored: StoredFile, strip: bool) -> bool:
        encrypt = self._encrypt and stored.data_key is None
        return encrypt or (strip and not stored.metadata_checked and not stored.legal_hold)

    def _upgrade(self, stored: StoredFile, strip: bool) -> tuple[str, ...] | None:
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
                swapped = self._files.upgrade(stored, upgraded, self._node_id or 0, event)
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
            raise BerkasError(
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
        node_id = self._node_id if self._node_id is not None else 0
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
        # The intent first: a crash between the write and the swap leaves it, and the next
        # run (or the node with this number, at its start) removes the object.
        self._files.reserve_key(upgraded.key, node_id, self._clock.now())
        try:
            self._blobs.put_file(upgraded.key, body, stored.content_type)
        except Conflict:
            # The key holds someone else's object: never removed here. Unreachable while
            # node numbers are leased; the intent is left for ``recover`` to judge.
            raise
        except BerkasError:
            # A store that failed may still have linked the bytes (as for an upload).
            self._forget(upgraded.key)
            raise
        # A swap that raises may have committed all the same (a connection lost during
        # the commit): both objects stay, and the intents decide. Committed, the old key
        # is reserved and the row names the new one; not committed, the new key is still
        # reserved and no row names it. ``recover`` removes exactly the object no row names.
        swapped = self._files.upgrade(stored, upgraded, node_id, self._event(stored, actions))
        if not swapped:
            self._forget(upgraded.key)
            return False
        # The row names the new object: the old one is garbage, under an intent.
        try:
            self._blobs.delete(stored.key)
        except BerkasError as exc:
            log.warning(
                "%s upgraded; its old object is not removed yet (the next run does it): %s (%s)",
                stored.id,
                exc.message,
                exc.code,
            )
            return True
        self._files.release_key(stored.key)
        return True

    def _forget(self, key: str) -> None:
        """Remove an object no row points at, then its intent; left to ``recover`` when
        the store or the database is down."""
        try:
            self._blobs.delete(key)
            self._files.release_key(key)
        except BerkasError as exc:
            log.warning(
                "an object of a failed upgrade is left for the next run: %s (%s)",
                exc.message,
                exc.code,
            )

    def _new_key(self, stored: StoredFile) -> str:
        """The old key's name with ``-u<epoch ms>-<node>``: the same layout, unique
        because the node number is leased and the milliseconds only go up in a run."""
        now_ms = int(self._clock.now().timestamp() * 1000)
        self._last_ms = max(now_ms, self._last_ms + 1)
        head, dot, extension = stored.key.rpartition(".")
        if not dot:
            head, extension = stored.key, ""
        while True:
            name = _REWRITTEN.sub("", head) + f"-u{self._last_ms}-{self._node_id or 0:04d}"
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
                code=Code.INVALID_KEY,
            )
        return key

    def _event(self, stored: StoredFile, actions: list[str]) -> FileEvent:
        return FileEvent(
            file_id=stored.id,
            client_id=stored.client_id,
            kind=EventKind.UPGRADED,
            at=self._clock.now(),
            detail="; ".join(actions),
            actor=self._actor,
        )

    def _derive(self, derived: list[Path], write: Callable[[Path], _T]) -> tuple[Path, _T]:
        dst = scratch(self._spool_dir)
        derived.append(dst)
        try:
            return dst, write(dst)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full() from exc
            raise


def _sealer(src: Path, key: bytes) -> Callable[[Path], None]:
    return lambda dst: envelope.encrypt_file(src, dst, key)


def _count(report: UpgradeReport, actions: tuple[str, ...]) -> None:
    if not actions:
        report.skipped += 1
    for action in actions:
        if action == "encrypted":
            report.encrypted += 1
        elif action == "checked":
            report.checked += 1
        else:
            report.stripped += 1


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds() // 60)} minutes"
