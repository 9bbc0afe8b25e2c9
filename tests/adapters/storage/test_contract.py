"""One contract, every blob store: in-memory, local disk and S3 (on a throwaway Ceph RGW)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from berkas.core.errors import Conflict, InvalidRequest, NotFound
from berkas.core.ports import BlobStore

KEY = "berkas/sandbox/TEMP/BRN-0001-10791114622547/DOCUMENT/1740817815123.jpg"
INVALID_KEYS = [
    "../x",
    "/abs",
    "a//b",
    "a/./b",
    "a b",
    "a/../../etc/passwd",
    "",
    "trailing/",
    "caf\u00e9.jpg",
    "nul\x00byte",
    ".tmp/leftover",
    "x" * 1025,
]


def spooled(directory: Path, data: bytes, name: str = "upload") -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def read_all(store: BlobStore, key: str) -> bytes:
    return b"".join(store.open(key))


def test_round_trip_returns_the_exact_bytes(blob_store: BlobStore, spool: Path) -> None:
    data = bytes(range(256)) * 3 + b"\r\n\x00"

    blob_store.put_file(KEY, spooled(spool, data), "image/jpeg")

    assert read_all(blob_store, KEY) == data


def test_empty_file_round_trips(blob_store: BlobStore, spool: Path) -> None:
    blob_store.put_file("empty.bin", spooled(spool, b""), "application/octet-stream")

    assert read_all(blob_store, "empty.bin") == b""


def test_missing_key_is_not_found_before_any_chunk(blob_store: BlobStore) -> None:
    with pytest.raises(NotFound) as caught:
        blob_store.open("berkas/never-stored.jpg")

    assert caught.value.code == "file_not_found"


def test_existing_key_is_never_overwritten(blob_store: BlobStore, spool: Path) -> None:
    blob_store.put_file(KEY, spooled(spool, b"first", "one"), "image/jpeg")

    with pytest.raises(Conflict) as caught:
        blob_store.put_file(KEY, spooled(spool, b"second", "two"), "image/jpeg")

    assert caught.value.code == "duplicate_key"
    assert read_all(blob_store, KEY) == b"first"


def test_racing_writers_of_one_key_store_exactly_one_file(
    blob_store: BlobStore, spool: Path
) -> None:
    writers = 8
    barrier = threading.Barrier(writers)
    outcomes: dict[int, str] = {}

    def write(index: int) -> None:
        source = spooled(spool, f"writer {index}".encode(), f"upload-{index}")
        barrier.wait(timeout=10)
        try:
            blob_store.put_file(KEY, source, "image/jpeg")
            outcomes[index] = "stored"
        except Conflict:
            outcomes[index] = "conflict"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    winners = [index for index, outcome in outcomes.items() if outcome == "stored"]
    assert len(outcomes) == writers
    assert len(winners) == 1
    assert read_all(blob_store, KEY) == f"writer {winners[0]}".encode()


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_unsafe_keys_are_refused(blob_store: BlobStore, spool: Path, key: str) -> None:
    source = spooled(spool, b"data")

    for attempt in (
        lambda: blob_store.put_file(key, source, "image/jpeg"),
        lambda: blob_store.open(key),
        lambda: blob_store.delete(key),
    ):
        with pytest.raises(InvalidRequest) as caught:
            attempt()
        assert caught.value.code == "invalid_key"
    assert source.read_bytes() == b"data"


def test_delete_removes_and_is_idempotent(blob_store: BlobStore, spool: Path) -> None:
    blob_store.put_file(KEY, spooled(spool, b"data"), "image/jpeg")

    blob_store.delete(KEY)
    blob_store.delete(KEY)
    blob_store.delete("berkas/never-stored.jpg")

    with pytest.raises(NotFound):
        blob_store.open(KEY)


def test_deleted_key_can_be_written_again(blob_store: BlobStore, spool: Path) -> None:
    blob_store.put_file(KEY, spooled(spool, b"old", "one"), "image/jpeg")
    blob_store.delete(KEY)

    blob_store.put_file(KEY, spooled(spool, b"new", "two"), "image/jpeg")

    assert read_all(blob_store, KEY) == b"new"


def test_large_file_is_streamed_in_bounded_chunks(blob_store: BlobStore, spool: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    blob_store.put_file(KEY, spooled(spool, data), "application/pdf")

    chunks = list(blob_store.open(KEY, chunk_size=65536))

    assert len(chunks) == 81
    assert all(0 < len(chunk) <= 65536 for chunk in chunks)
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(data).digest()


def test_check_passes_when_reachable(blob_store: BlobStore) -> None:
    blob_store.check()


def test_chunk_size_must_be_positive(blob_store: BlobStore, spool: Path) -> None:
    blob_store.put_file(KEY, spooled(spool, b"data"), "image/jpeg")

    with pytest.raises(ValueError, match="chunk_size"):
        blob_store.open(KEY, chunk_size=0)
