"""Link downloads: the envelope read in sealed-chunk pieces, the signature checked before
anything is read, refusals recorded only for genuine links and only a few times, and
bytes stored as sent handed over as their local file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from berkas.adapters.sealing import MasterKey, SealedDataKeys, Sealer
from berkas.adapters.storage.local import LocalBlobStore
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.core import envelope
from berkas.core.errors import PermissionDenied
from berkas.core.models import Caller, EventKind, StoredFile
from berkas.core.ports import BlobStore, FileRepository
from berkas.services.files import FileService
from berkas.services.limits import RefusalEvents
from tests.services.test_files import TTL, World, link_parts
from tests.support import samples


class RecordingStore(MemoryBlobStore):
    """The in-memory store, noting the piece sizes each open asks for and yields."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[int, int | None]] = []
        self.yielded: list[int] = []

    def open(
        self, key: str, chunk_size: int = 65536, *, first_size: int | None = None
    ) -> Iterator[bytes]:
        self.asked.append((chunk_size, first_size))
        pieces = super().open(key, chunk_size, first_size=first_size)
        return (self._note(piece) for piece in pieces)

    def _note(self, piece: bytes) -> bytes:
        self.yielded.append(len(piece))
        return piece


class CountingFiles:
    """A file repository that counts every call made to it."""

    def __init__(self, inner: FileRepository) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if callable(attribute):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attribute(*args, **kwargs)

            return counted
        return attribute


def _service(world: World, files: Any, blobs: BlobStore, **extra: Any) -> FileService:
    return FileService(
        files, blobs, world.links, events=world.db.events, clock=world.clock, node_id=1, **extra
    )


FILE_ID = "DCM-0001-1700000000000"
KEY = "berkas/sandbox/TEMP/BRN-0001-1/LOGO/1700000000000-0001.png"


def _row(world: World, size: int, data_key: str | None = None) -> StoredFile:
    return StoredFile(
        id=FILE_ID,
        client_id=world.alice.client_id,
        category="LOGO",
        code=None,
        key=KEY,
        content_type="image/png",
        size=size,
        sha256="0" * 64,
        width=40,
        height=30,
        created_at=world.clock.now(),
        data_key=data_key,
    )


def _encrypted(world: World, store: BlobStore, plain: bytes) -> SealedDataKeys:
    """``plain`` sealed into ``store`` under a fresh data key, its row in the database."""
    keys = SealedDataKeys(Sealer(MasterKey(bytes(range(32))), source="test"))
    data_key = envelope.new_data_key()
    source, sealed = world.tmp_path / "plain", world.tmp_path / "sealed"
    source.write_bytes(plain)
    envelope.encrypt_file(source, sealed, data_key)
    store.put_file(KEY, sealed, "image/png")
    row = _row(world, len(plain))
    world.db.files.add(replace(row, data_key=keys.wrap(data_key, row.binding)))
    return keys


def _events(world: World, kind: EventKind) -> list[Any]:
    return [e for e in world.db.events.for_file(FILE_ID) if e.kind is kind]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_an_envelope_is_read_in_sealed_chunks_and_served_byte_exact(world: World) -> None:
    store = RecordingStore()
    plain = bytes(range(256)) * 1500 + b"tail"  # 384,004 bytes: 6 chunks, the last short
    keys = _encrypted(world, store, plain)
    files = _service(world, world.db.files, store, data_keys=keys)
    link = world.links.issue(world.db.files.get(FILE_ID) or pytest.fail("no row"))

    stored, chunks = files.open_link(*link_parts(link))
    pieces = list(chunks)

    assert b"".join(pieces) == plain
    assert stored.size == len(plain)
    sealed = envelope.CHUNK_BYTES + envelope.TAG_BYTES
    assert store.asked == [(sealed, envelope.HEADER_BYTES)]
    # The header, then whole sealed chunks: nothing for decrypt to re-cut.
    assert store.yielded == [envelope.HEADER_BYTES, *[sealed] * 5, len(plain) % 65536 + 16]
    # The first chunk alone (opened before the answer), the rest in large pieces.
    assert len(pieces[0]) == envelope.CHUNK_BYTES
    assert max(len(p) for p in pieces[1:]) > envelope.CHUNK_BYTES


def test_a_forged_signature_reads_nothing_and_records_nothing(world: World) -> None:
    stored = world.store(world.alice, FILE_ID, samples.png(seed=1))
    counting = CountingFiles(world.db.files)
    files = _service(world, counting, world.blobs)
    key, expires, signature = link_parts(world.links.issue(stored))
    forged = signature[:-1] + ("A" if signature[-1] != "A" else "B")

    for attempt in (
        (key, expires, forged),
        (key, expires, "3." + forged),  # naming a generation changes nothing
        (key, str(int(expires) + 1), signature),
    ):
        with pytest.raises(PermissionDenied) as caught:
            files.open_link(*attempt, Caller(ip="192.0.2.1"))
        assert caught.value.code == "link_invalid"
        assert caught.value.message == "This link's signature does not match; request a fresh link."

    assert counting.calls == []
    assert world.db.events.for_file(FILE_ID) == []
    files.open_link(key, expires, signature)  # the genuine one reads the row, and opens
    assert counting.calls == ["get_by_key"]


def test_an_expired_genuine_link_is_recorded_once_per_minute_per_address(world: World) -> None:
    stored = world.store(world.alice, FILE_ID, samples.png(seed=2))
    ticks = [0.0]
    files = _service(
        world, world.db.files, world.blobs, refusals=RefusalEvents(clock=lambda: ticks[0])
    )
    link = link_parts(world.links.issue(stored))
    world.clock.advance(TTL)

    for _ in range(100):
        with pytest.raises(PermissionDenied) as caught:
            files.open_link(*link, Caller(ip="198.51.100.9"))
        assert caught.value.code == "link_expired"
    assert [e.detail for e in _events(world, EventKind.LINK_REFUSED)] == ["link_expired"]

    ticks[0] += 61  # a minute on: recorded again, once
    for _ in range(5):
        with pytest.raises(PermissionDenied):
            files.open_link(*link, Caller(ip="198.51.100.9"))
    assert len(_events(world, EventKind.LINK_REFUSED)) == 2


def test_refusals_from_many_addresses_are_bounded_per_file(world: World) -> None:
    stored = world.store(world.alice, FILE_ID, samples.png(seed=3))
    files = _service(world, world.db.files, world.blobs, refusals=RefusalEvents(per_file=10))
    link = link_parts(world.links.issue(stored))
    world.files.revoke_links(world.alice, FILE_ID)

    for n in range(100):
        with pytest.raises(PermissionDenied) as caught:
            files.open_link(*link, Caller(ip=f"2001:db8::{n:x}"))
        assert caught.value.code == "link_revoked"
    assert len(_events(world, EventKind.LINK_REFUSED)) == 10


def test_the_refusal_memory_is_bounded() -> None:
    refusals = RefusalEvents(capacity=100, clock=lambda: 0.0)
    for n in range(1000):
        assert refusals.admit(f"DCM-{n}", "192.0.2.1", "link_expired")
    assert len(refusals._seen) <= 100
    assert len(refusals._files) <= 100


def test_a_link_of_a_generation_the_file_never_reached_matches_nothing(world: World) -> None:
    stored = world.store(world.alice, FILE_ID, samples.png(seed=4))
    key, expires, _ = link_parts(world.links.issue(stored))
    ahead = world.signer.sign(key, int(expires), stored.link_generation + 1)

    with pytest.raises(PermissionDenied) as caught:
        world.files.open_link(key, expires, ahead)

    assert caught.value.code == "link_invalid"


def test_a_bare_signature_of_an_earlier_release_still_names_its_generation(world: World) -> None:
    stored = world.store(world.alice, FILE_ID, samples.png(seed=5))
    world.files.revoke_links(world.alice, FILE_ID)
    key, expires, prefixed = link_parts(world.files.describe(world.alice, FILE_ID).link)
    assert prefixed.startswith("1.")

    found, chunks = world.files.open_link(key, expires, prefixed.removeprefix("1."))

    assert (found.id, b"".join(chunks)) == (stored.id, samples.png(seed=5))


def test_bytes_stored_as_sent_on_local_disk_are_served_from_their_file(world: World) -> None:
    store = LocalBlobStore(world.tmp_path / "store")
    data = samples.png(seed=6)
    source = world.tmp_path / "upload.png"
    source.write_bytes(data)
    store.put_file(KEY, source, "image/png")
    world.db.files.add(_row(world, len(data)))
    files = _service(world, world.db.files, store)
    link = link_parts(world.links.issue(world.db.files.get(FILE_ID) or pytest.fail("no row")))

    opened = files.download(*link)

    assert opened.path is not None
    assert opened.path.read_bytes() == data
    assert _events(world, EventKind.LINK_OPENED)  # recorded before the answer, as before
    # The in-memory store has no files: its bytes come as pieces.
    assert (
        world.files.download(
            *link_parts(world.links.issue(world.store(world.bob, "DCM-0001-1700000000001", data)))
        ).path
        is None
    )
