"""The spool: caps while streaming, hashes, keeps the head, never leaves files behind."""

from __future__ import annotations

import hashlib
import os
import stat
import tracemalloc
from pathlib import Path

import pytest

from berkas.core.content import SNIFF_BYTES, Kind, sniff
from berkas.core.errors import InsufficientStorage, PayloadTooLarge
from berkas.services.spool import Spool, check_free_space, cleanup_stale

MB = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def spooled(directory: Path) -> list[Path]:
    return sorted(directory.glob("upload-*.part"))


def test_bytes_land_in_a_private_file_with_size_hash_and_head(tmp_path: Path) -> None:
    chunks = [PNG_SIGNATURE + b"\x00" * 100, os.urandom(70_000), b"tail"]

    with Spool.create(tmp_path, max_bytes=MB, label="LOGO") as spool:
        for chunk in chunks:
            spool.write(chunk)
        spool.finish()

    body = b"".join(chunks)
    assert spool.path.parent == tmp_path
    assert spool.path.name.startswith("upload-")
    assert spool.path.suffix == ".part"
    assert spool.path.read_bytes() == body
    assert spool.size == len(body)
    assert spool.sha256 == hashlib.sha256(body).hexdigest()
    assert spool.head == body[:SNIFF_BYTES]
    assert sniff(spool.head) is Kind.PNG
    # A KYC document is readable by the service's user only.
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600


def test_head_is_captured_across_one_byte_writes(tmp_path: Path) -> None:
    body = PNG_SIGNATURE + bytes(range(40))

    with Spool.create(tmp_path, max_bytes=1000, label="LOGO") as spool:
        for i in range(len(body)):
            spool.write(body[i : i + 1])
        spool.finish()

    assert spool.head == body[:SNIFF_BYTES]
    assert spool.sha256 == hashlib.sha256(body).hexdigest()
    assert spool.path.read_bytes() == body


def test_a_file_shorter_than_the_sniff_window_keeps_all_of_it_as_head(tmp_path: Path) -> None:
    with Spool.create(tmp_path, max_bytes=1000, label="LOGO") as spool:
        spool.write(b"%PDF-")
        spool.write(b"")
        spool.finish()

    assert (spool.head, spool.size) == (b"%PDF-", 5)


def test_nothing_written_is_an_empty_file(tmp_path: Path) -> None:
    with Spool.create(tmp_path, max_bytes=10, label="LOGO") as spool:
        spool.finish()

    assert (spool.size, spool.head, spool.path.read_bytes()) == (0, b"", b"")
    assert spool.sha256 == hashlib.sha256(b"").hexdigest()


def test_exactly_the_cap_is_accepted(tmp_path: Path) -> None:
    with Spool.create(tmp_path, max_bytes=15 * MB, label="DOCUMENT/KTP") as spool:
        spool.write(b"x" * (15 * MB - 1))
        spool.write(b"y")
        spool.finish()

    assert spool.size == 15 * MB
    assert spool.path.stat().st_size == 15 * MB


def test_one_byte_over_the_cap_is_refused_and_the_file_removed(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, max_bytes=15 * MB, label="DOCUMENT/KTP")
    spool.write(b"x" * (15 * MB))

    with pytest.raises(PayloadTooLarge) as info:
        spool.write(b"y")

    assert info.value.code == "file_too_large"
    # Only the cap is stated: the body's real total was never read.
    assert info.value.message == "file is larger than 15 MB; DOCUMENT/KTP accepts at most 15 MB."
    assert spooled(tmp_path) == []
    with pytest.raises(ValueError, match="discarded"):
        spool.write(b"z")


def test_the_chunk_that_crosses_the_cap_is_not_written(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, max_bytes=10, label="LOGO")
    spool.write(b"12345678")

    with pytest.raises(PayloadTooLarge):
        spool.write(b"abc")

    assert spool.size == 8


def test_an_error_inside_the_block_removes_the_file(tmp_path: Path) -> None:
    seen: list[Path] = []

    def interrupted_upload() -> None:
        with Spool.create(tmp_path, 1000, "LOGO") as spool:
            spool.write(b"half an upload")
            seen.extend(spooled(tmp_path))
            raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        interrupted_upload()

    assert len(seen) == 1
    assert spooled(tmp_path) == []


def test_an_over_cap_write_inside_the_block_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(PayloadTooLarge), Spool.create(tmp_path, 4, "LOGO") as spool:
        spool.write(b"12345")

    assert spooled(tmp_path) == []


def test_a_clean_exit_keeps_the_file_for_the_caller(tmp_path: Path) -> None:
    with Spool.create(tmp_path, 1000, "LOGO") as spool:
        spool.write(b"abc")

    assert spool.path.read_bytes() == b"abc"
    spool.discard()
    assert spooled(tmp_path) == []


def test_discard_is_idempotent_and_safe_after_the_file_was_moved(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, 1000, "LOGO")
    spool.write(b"abc")
    spool.finish()
    moved = spool.path.rename(tmp_path / "stored.jpg")

    spool.discard()
    spool.discard()

    assert moved.read_bytes() == b"abc"
    assert spooled(tmp_path) == []


def test_finish_twice_is_a_programming_error(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, 1000, "LOGO")
    spool.finish()

    with pytest.raises(ValueError, match="finished"):
        spool.finish()
    with pytest.raises(ValueError, match="finished"):
        spool.write(b"late")
    spool.discard()


def test_tighten_lowers_the_cap_for_later_writes(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, max_bytes=15 * MB, label="upload")
    spool.write(b"x" * MB)

    spool.tighten(2 * MB, "PHOTO_PROOF")
    spool.write(b"x" * MB)
    with pytest.raises(PayloadTooLarge) as info:
        spool.write(b"x")

    assert info.value.message == "file is larger than 2 MB; PHOTO_PROOF accepts at most 2 MB."
    assert spooled(tmp_path) == []


def test_tighten_below_what_was_already_written_refuses_at_once(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, max_bytes=15 * MB, label="upload")
    spool.write(b"x" * (3 * MB))

    with pytest.raises(PayloadTooLarge) as info:
        spool.tighten(2 * MB, "LOGO")

    assert info.value.code == "file_too_large"
    assert "LOGO accepts at most 2 MB" in info.value.message
    assert spooled(tmp_path) == []


def test_tighten_never_raises_the_cap(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, max_bytes=10, label="upload")

    spool.tighten(1000, "LOGO")
    with pytest.raises(PayloadTooLarge) as info:
        spool.write(b"x" * 11)

    assert "upload accepts at most 10 bytes" in info.value.message


def test_decimal_and_odd_caps_are_stated_as_configured(tmp_path: Path) -> None:
    for cap, said in [(15_000_000, "15 MB"), (1_572_864, "1.5 MB"), (500, "500 bytes")]:
        spool = Spool.create(tmp_path, max_bytes=cap, label="LOGO")
        with pytest.raises(PayloadTooLarge) as info:
            spool.write(b"x" * (cap + 1))
        assert info.value.message == f"file is larger than {said}; LOGO accepts at most {said}."


def test_memory_stays_flat_however_large_the_upload(tmp_path: Path) -> None:
    chunk = os.urandom(64 * 1024)
    total = 50 * MB

    tracemalloc.start()
    try:
        with Spool.create(tmp_path, max_bytes=total, label="DOCUMENT/KTP") as spool:
            for _ in range(total // len(chunk)):
                spool.write(chunk)
            spool.finish()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert spool.size == total
    assert peak < 2 * MB  # a buffered upload would be 50 MB here
    spool.discard()


def test_cleanup_stale_removes_only_leftover_spool_files(tmp_path: Path) -> None:
    leftovers = [Spool.create(tmp_path, 10, "LOGO") for _ in range(3)]
    leftovers[0].write(b"partial")
    keep = [tmp_path / "stored.jpg", tmp_path / "upload-notes.txt", tmp_path / "x.part"]
    for path in keep:
        path.write_bytes(b"keep")

    assert cleanup_stale(tmp_path) == 3

    assert spooled(tmp_path) == []
    assert all(path.read_bytes() == b"keep" for path in keep)
    assert cleanup_stale(tmp_path) == 0
    for spool in leftovers:  # a crashed process's descriptors die with it; ours linger
        spool.discard()


def test_cleanup_stale_of_a_missing_directory_is_nothing(tmp_path: Path) -> None:
    assert cleanup_stale(tmp_path / "not-yet-created") == 0


def test_a_negative_cap_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        Spool.create(tmp_path, max_bytes=-1, label="LOGO")

    assert spooled(tmp_path) == []


def _on_a_full_disk(tmp_path: Path) -> Spool:
    # /dev/full answers every write with ENOSPC; the spool's own file stands beside it,
    # so the test sees whether the spool removes it.
    path = tmp_path / "upload-full.part"
    path.write_bytes(b"")
    return Spool(open("/dev/full", "wb"), path, MB, "LOGO")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("size", [100, 64 * 1024], ids=["buffered, full at finish", "at write"])
def test_a_full_disk_is_insufficient_storage_and_removes_the_spool(
    tmp_path: Path, size: int
) -> None:
    spool = _on_a_full_disk(tmp_path)

    def write_and_finish() -> None:
        spool.write(b"x" * size)
        spool.finish()

    with pytest.raises(InsufficientStorage) as raised:
        write_and_finish()
    assert raised.value.code == "insufficient_storage"
    assert str(tmp_path) not in raised.value.message
    assert not spool.path.exists()
    spool.discard()  # safe to repeat


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_discarding_a_spool_whose_buffer_cannot_be_flushed_still_removes_it(
    tmp_path: Path,
) -> None:
    spool = _on_a_full_disk(tmp_path)
    spool.write(b"x" * 100)  # buffered: flushing it at close fails with ENOSPC
    spool.discard()
    assert not spool.path.exists()


def test_check_free_space_reports_a_disk_below_the_floor(tmp_path: Path) -> None:
    check_free_space(tmp_path, min_free=0)
    with pytest.raises(InsufficientStorage):
        check_free_space(tmp_path, min_free=2**62)


# --- small bodies in memory (memory_bytes) ----------------------------------------------------


def test_a_body_within_memory_bytes_never_touches_the_disk(tmp_path: Path) -> None:
    body = PNG_SIGNATURE + os.urandom(10_000)
    spool = Spool.create(tmp_path, max_bytes=MB, label="LOGO", memory_bytes=64 * 1024)
    for start in range(0, len(body), 4096):
        spool.write(body[start : start + 4096])
    spool.finish()

    assert spooled(tmp_path) == []
    assert spool.in_memory
    assert spool.source == body
    assert (spool.size, spool.sha256, spool.head) == (
        len(body),
        hashlib.sha256(body).hexdigest(),
        body[:SNIFF_BYTES],
    )
    with pytest.raises(ValueError, match="in memory"):
        _ = spool.path
    spool.discard()
    with pytest.raises(ValueError, match="not finished"):
        _ = spool.source


def test_a_body_outgrowing_memory_bytes_moves_to_a_private_file_whole(tmp_path: Path) -> None:
    body = os.urandom(300_000)
    spool = Spool.create(tmp_path, max_bytes=MB, label="LOGO", memory_bytes=100_000)
    for start in range(0, len(body), 65_536):
        spool.write(body[start : start + 65_536])
    spool.finish()

    assert not spool.in_memory
    assert spooled(tmp_path) == [spool.path]
    assert spool.source == spool.path
    assert spool.path.read_bytes() == body
    assert stat.S_IMODE(spool.path.stat().st_mode) == 0o600
    assert spool.sha256 == hashlib.sha256(body).hexdigest()
    spool.discard()
    assert spooled(tmp_path) == []


def test_the_cap_holds_in_memory_too(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, max_bytes=10, label="LOGO", memory_bytes=1024)
    spool.write(b"12345")

    with pytest.raises(PayloadTooLarge, match="LOGO accepts at most 10 bytes"):
        spool.write(b"123456")

    assert spooled(tmp_path) == []
    with pytest.raises(ValueError, match="discarded"):
        spool.write(b"x")


def test_a_full_disk_when_the_body_outgrows_memory_is_a_507_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool.create(tmp_path, max_bytes=MB, label="LOGO", memory_bytes=10)
    spool.write(b"0123456789")

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("berkas.services.spool.tempfile.mkstemp", no_space)
    with pytest.raises(InsufficientStorage):
        spool.write(b"one more byte")
    assert spooled(tmp_path) == []
