"""The at-rest envelope: exact round trips, and every alteration refused, never served."""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from berkas.core import envelope
from berkas.core.envelope import EnvelopeError

KEY = bytes(range(32))
CHUNK = 1024


def _seal(tmp_path: Path, plain: bytes, key: bytes = KEY, chunk: int = CHUNK) -> bytes:
    src, dst = tmp_path / "plain", tmp_path / "sealed"
    src.write_bytes(plain)
    envelope.encrypt_file(src, dst, key, chunk_bytes=chunk)
    return dst.read_bytes()


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _open(sealed: bytes, key: bytes = KEY, piece: int = 4096) -> bytes:
    return b"".join(envelope.decrypt(_pieces(sealed, piece), key))


@pytest.mark.parametrize("length", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
@pytest.mark.parametrize("piece", [1, 17, CHUNK + 16, 100_000])
def test_round_trip_is_exact_whatever_the_sizes(tmp_path: Path, length: int, piece: int) -> None:
    plain = os.urandom(length)
    sealed = _seal(tmp_path, plain)
    assert len(sealed) == envelope.sealed_size(length, CHUNK)
    assert _open(sealed, piece=piece) == plain


def test_the_envelope_does_not_contain_the_plaintext(tmp_path: Path) -> None:
    plain = b"NIK 3174012345678901 " * 500
    sealed = _seal(tmp_path, plain)
    assert b"3174012345678901" not in sealed
    assert sealed.startswith(envelope.MAGIC)


def test_two_seals_of_one_document_differ(tmp_path: Path) -> None:
    plain = b"same bytes" * 100
    assert _seal(tmp_path, plain) != _seal(tmp_path, plain)


def test_another_key_is_refused(tmp_path: Path) -> None:
    sealed = _seal(tmp_path, b"x" * 5000)
    with pytest.raises(EnvelopeError, match="chunk 0"):
        _open(sealed, key=bytes(32))


@pytest.mark.parametrize(
    "offset",
    [0, 4, 5, 9, envelope.HEADER_BYTES, envelope.HEADER_BYTES + CHUNK + 3, -1],
    ids=["magic", "version", "chunk-size", "prefix", "first-chunk", "its-tag", "last-tag"],
)
def test_any_flipped_byte_is_refused(tmp_path: Path, offset: int) -> None:
    sealed = bytearray(_seal(tmp_path, os.urandom(3 * CHUNK + 5)))
    sealed[offset] ^= 0x01
    with pytest.raises(EnvelopeError):
        _open(bytes(sealed))


def test_cutting_at_a_chunk_boundary_is_refused(tmp_path: Path) -> None:
    # STREAM's last flag: dropping whole chunks off the end is not a shorter document.
    sealed = _seal(tmp_path, os.urandom(3 * CHUNK))
    cut = sealed[: envelope.HEADER_BYTES + 2 * (CHUNK + envelope.TAG_BYTES)]
    with pytest.raises(EnvelopeError, match="last chunk"):
        _open(cut)


@pytest.mark.parametrize("keep", [0, 3, envelope.HEADER_BYTES, envelope.HEADER_BYTES + 10])
def test_a_stub_is_refused(tmp_path: Path, keep: int) -> None:
    sealed = _seal(tmp_path, os.urandom(2 * CHUNK))
    with pytest.raises(EnvelopeError):
        _open(sealed[:keep])


def test_appending_is_refused(tmp_path: Path) -> None:
    sealed = _seal(tmp_path, os.urandom(2 * CHUNK))
    with pytest.raises(EnvelopeError):
        _open(sealed + b"\x00" * (CHUNK + envelope.TAG_BYTES))


def test_swapped_chunks_are_refused(tmp_path: Path) -> None:
    sealed = _seal(tmp_path, os.urandom(3 * CHUNK))
    head, size = envelope.HEADER_BYTES, CHUNK + envelope.TAG_BYTES
    first, second = sealed[head : head + size], sealed[head + size : head + 2 * size]
    swapped = sealed[:head] + second + first + sealed[head + 2 * size :]
    with pytest.raises(EnvelopeError, match="chunk 0"):
        _open(swapped)


def test_authenticated_chunks_come_before_a_bad_one(tmp_path: Path) -> None:
    # What a streaming reader relies on: everything yielded passed its tag; the error
    # arrives at the first chunk that does not.
    plain = os.urandom(3 * CHUNK)
    sealed = bytearray(_seal(tmp_path, plain))
    sealed[envelope.HEADER_BYTES + 2 * (CHUNK + envelope.TAG_BYTES) + 1] ^= 0xFF
    plain_chunks = envelope.decrypt(_pieces(bytes(sealed), 999), KEY)
    got = next(plain_chunks) + next(plain_chunks)
    assert got == plain[: 2 * CHUNK]
    with pytest.raises(EnvelopeError, match="last chunk"):
        next(plain_chunks)


def test_not_an_envelope_is_named(tmp_path: Path) -> None:
    with pytest.raises(EnvelopeError, match="not an envelope"):
        _open(b"\xff\xd8\xff\xe0" + b"\x00" * 100)


def test_a_hostile_chunk_size_is_refused_before_buffering(tmp_path: Path) -> None:
    sealed = bytearray(_seal(tmp_path, b"abc"))
    sealed[5:9] = (2**31).to_bytes(4, "big")
    with pytest.raises(EnvelopeError, match="out of range"):
        _open(bytes(sealed))


def test_keys_are_checked(tmp_path: Path) -> None:
    (tmp_path / "p").write_bytes(b"x")
    with pytest.raises(ValueError, match="32 bytes"):
        envelope.encrypt_file(tmp_path / "p", tmp_path / "s", b"short")
    assert len(envelope.new_data_key()) == envelope.KEY_BYTES
    assert envelope.new_data_key() != envelope.new_data_key()


def test_memory_stays_flat_for_a_large_document(tmp_path: Path) -> None:
    src, dst = tmp_path / "big", tmp_path / "big.sealed"
    with src.open("wb") as out:
        for _ in range(20):
            out.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        envelope.encrypt_file(src, dst, KEY)
        _, sealing_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with dst.open("rb") as sealed:
            pieces = iter(lambda: sealed.read(65536), b"")
            total = sum(len(chunk) for chunk in envelope.decrypt(pieces, KEY))
        _, opening_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 20 * 1024 * 1024
    # A few chunks in flight (64 KiB each), not the 20 MiB document.
    assert sealing_peak < 1024 * 1024
    assert opening_peak < 1024 * 1024


@pytest.mark.parametrize("length", [0, 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
@pytest.mark.parametrize("piece", [1, 333, CHUNK, 5 * CHUNK])
def test_a_sealing_writer_fed_in_any_pieces_seals_what_encrypt_file_would(
    length: int, piece: int
) -> None:
    # The upload seals while it strips: whatever sizes the stripper writes in, the
    # envelope is the same shape (one last chunk, full chunks before it) and opens.
    plain = os.urandom(length)
    out = io.BytesIO()
    writer = envelope.SealingWriter(out, KEY, chunk_bytes=CHUNK)
    for part in _pieces(plain, piece):
        writer.write(part)
    writer.close()
    writer.close()  # a second close adds nothing

    assert len(out.getvalue()) == envelope.sealed_size(length, CHUNK)
    assert _open(out.getvalue()) == plain
    with pytest.raises(ValueError, match="already closed"):
        writer.write(b"more")


def test_a_sealing_writer_not_closed_is_a_truncated_envelope() -> None:
    # The last chunk is written by close(): an upload that failed half-way leaves an
    # envelope no reader accepts, never a shorter valid document.
    out = io.BytesIO()
    writer = envelope.SealingWriter(out, KEY, chunk_bytes=CHUNK)
    writer.write(os.urandom(3 * CHUNK))

    with pytest.raises(EnvelopeError, match=r"truncated|authentication"):
        _open(out.getvalue())
