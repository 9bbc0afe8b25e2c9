"""The envelope format pinned byte for byte, and its limits at their exact edges.

Issue 19 (item 6): with round trips only, changing the magic, the version, the last-chunk
flag or the nonce layout went unnoticed, yet every document already stored would stop
decrypting. The known-answer vectors below were computed from the format as
``core/envelope.py``'s docstring spells it, with ``cryptography``'s AESGCM directly, and
are committed as hex: the module must reproduce them and open them.
"""

from __future__ import annotations

import struct
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from berkas.core import envelope
from berkas.core.envelope import EnvelopeError

KEY = bytes(range(32))
PREFIX = bytes.fromhex("b0b1b2b3b4b5b6")
CHUNK = 16
PLAIN = b"NIK 3174012345678901; KTP page 1 of 1.\n"  # 39 bytes: chunks of 16, 16 and 7
# header = "BRKE" || version 1 || chunk size 16 (u32 BE) || nonce prefix
HEADER_HEX = "42524b45" + "01" + "00000010" + "b0b1b2b3b4b5b6"
SEALED_HEX = (
    HEADER_HEX
    # chunk 0 (nonce prefix || 00000000 || 00) and its tag
    + "eda18d80d079b4a24848a0bb836bc486ea03fffbadd391190f1c0db50f655ed2"
    # chunk 1 (nonce prefix || 00000001 || 00) and its tag
    + "8bddf6ba8b5081847a30a9199729d57e9e31be39454b179924aaa3f535fb6e2d"
    # chunk 2, the last (nonce prefix || 00000002 || 01): 7 bytes and the tag
    + "881f14a60612e262964681f1611f1f0ed8607e96a50fca"
)
# An empty document: one empty last chunk, i.e. the header and a tag.
EMPTY_HEX = HEADER_HEX + "16493f288113bec10d52647a17cecb0f"


@pytest.fixture
def fixed_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """encrypt_file draws its nonce prefix from os.urandom: give it PREFIX instead."""

    def urandom(size: int) -> bytes:
        assert size == len(PREFIX)
        return PREFIX

    monkeypatch.setattr(envelope, "os", types.SimpleNamespace(urandom=urandom))


def _seal(tmp_path: Path, plain: bytes, chunk: int = CHUNK) -> bytes:
    src, dst = tmp_path / "plain", tmp_path / "sealed"
    src.write_bytes(plain)
    envelope.encrypt_file(src, dst, KEY, chunk_bytes=chunk)
    return dst.read_bytes()


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _open(sealed: bytes, piece: int = 4096) -> bytes:
    return b"".join(envelope.decrypt(_pieces(sealed, piece), KEY))


@pytest.mark.usefixtures("fixed_prefix")
@pytest.mark.parametrize(("plain", "sealed_hex"), [(PLAIN, SEALED_HEX), (b"", EMPTY_HEX)])
def test_sealing_reproduces_the_known_answer_vector(
    tmp_path: Path, plain: bytes, sealed_hex: str
) -> None:
    assert _seal(tmp_path, plain).hex() == sealed_hex


@pytest.mark.parametrize(("plain", "sealed_hex"), [(PLAIN, SEALED_HEX), (b"", EMPTY_HEX)])
@pytest.mark.parametrize("piece", [1, 5, 32, 1000])
def test_the_committed_vector_opens(plain: bytes, sealed_hex: str, piece: int) -> None:
    # What every stored document relies on: bytes sealed by an earlier berkas still open.
    assert _open(bytes.fromhex(sealed_hex), piece) == plain


def test_the_vector_is_the_documented_stream_construction() -> None:
    # Independent of envelope.py: nonce_i = prefix || i (u32 BE) || last flag, AAD = header.
    header = bytes.fromhex(HEADER_HEX)
    aead = AESGCM(KEY)
    sealed = bytes.fromhex(SEALED_HEX)[len(header) :]
    boxes = [sealed[:32], sealed[32:64], sealed[64:]]
    opened = [
        aead.decrypt(PREFIX + struct.pack(">I", i) + bytes([i == 2]), box, header)
        for i, box in enumerate(boxes)
    ]
    assert b"".join(opened) == PLAIN


def test_the_last_nonce_the_format_allows_is_pinned() -> None:
    # Chunk 2**32 - 1 is the last one a u32 counter can name; its flag byte is 0x01.
    assert envelope._nonce(PREFIX, 2**32 - 1, True) == PREFIX + b"\xff\xff\xff\xff\x01"
    assert envelope._nonce(PREFIX, 2**31, False) == PREFIX + b"\x80\x00\x00\x00\x00"


@pytest.mark.parametrize("chunk", [0, -1, envelope._MAX_CHUNK_BYTES + 1])
def test_a_chunk_size_outside_the_format_is_refused_on_write(tmp_path: Path, chunk: int) -> None:
    # chunk_bytes=0 would read nothing and seal every document as an empty one.
    src, dst = tmp_path / "plain", tmp_path / "sealed"
    src.write_bytes(PLAIN)
    with pytest.raises(ValueError, match=rf"^chunk_bytes must be in 1\.\.16777216, got {chunk}$"):
        envelope.encrypt_file(src, dst, KEY, chunk_bytes=chunk)
    assert not dst.exists()


@pytest.mark.parametrize("chunk", [1, envelope._MAX_CHUNK_BYTES])
def test_the_edge_chunk_sizes_seal_and_open(tmp_path: Path, chunk: int) -> None:
    sealed = _seal(tmp_path, PLAIN, chunk)
    assert len(sealed) == envelope.sealed_size(len(PLAIN), chunk)
    assert _open(sealed, piece=7) == PLAIN


def _crafted(chunk_bytes: int, plain: bytes = b"") -> bytes:
    """A well-authenticated one-chunk envelope whose header names ``chunk_bytes``."""
    header = struct.pack(">4sBI7s", b"BRKE", 1, chunk_bytes, PREFIX)
    nonce = PREFIX + struct.pack(">IB", 0, 1)
    return header + AESGCM(KEY).encrypt(nonce, plain, header)


@pytest.mark.parametrize("chunk", [0, envelope._MAX_CHUNK_BYTES + 1])
def test_a_chunk_size_outside_the_format_is_refused_on_read(chunk: int) -> None:
    # Tags do not help here: whoever wrote the header could compute them.
    with pytest.raises(EnvelopeError, match=rf"^envelope chunk size {chunk} is out of range$"):
        _open(_crafted(chunk))


@pytest.mark.parametrize("chunk", [1, envelope._MAX_CHUNK_BYTES])
def test_the_edge_chunk_sizes_are_read(chunk: int) -> None:
    assert _open(_crafted(chunk, b"x")) == b"x"


@pytest.mark.parametrize("version", [0, 2, 255])
def test_another_version_is_named(version: int) -> None:
    sealed = bytearray(bytes.fromhex(EMPTY_HEX))
    sealed[4] = version
    with pytest.raises(
        EnvelopeError, match=rf"^envelope version {version} is not one this berkas reads$"
    ):
        _open(bytes(sealed))


def test_not_an_envelope_says_so_exactly() -> None:
    with pytest.raises(EnvelopeError) as caught:
        _open(b"%PDF-1.7\n" + bytes(64))
    assert str(caught.value) == "the stored object is not an envelope (no BRKE header)"


@pytest.mark.parametrize("keep", [0, 1, envelope.HEADER_BYTES - 1])
def test_shorter_than_a_header_is_named(keep: int) -> None:
    with pytest.raises(EnvelopeError) as caught:
        _open(bytes.fromhex(SEALED_HEX)[:keep], piece=1)
    assert str(caught.value) == "the stored object is too short to be an envelope"


@pytest.mark.parametrize("piece", [1, envelope.HEADER_BYTES, 100])
@pytest.mark.parametrize("keep", [envelope.HEADER_BYTES, envelope.HEADER_BYTES + 15])
def test_a_header_without_a_whole_tag_is_truncated(piece: int, keep: int) -> None:
    with pytest.raises(EnvelopeError) as caught:
        _open(bytes.fromhex(SEALED_HEX)[:keep], piece=piece)
    assert str(caught.value) == "the envelope ends before its last chunk (truncated)"


@pytest.mark.parametrize(
    ("offset", "where"),
    [(envelope.HEADER_BYTES + 1, "chunk 0"), (-1, "its last chunk")],
)
def test_a_failed_tag_names_where_and_what_it_means(offset: int, where: str) -> None:
    sealed = bytearray(bytes.fromhex(SEALED_HEX))
    sealed[offset] ^= 0x80
    with pytest.raises(EnvelopeError) as caught:
        _open(bytes(sealed))
    assert str(caught.value) == (
        f"the envelope fails authentication at {where}: altered, truncated, extended "
        "or sealed under another data key"
    )


def test_a_document_of_more_chunks_than_the_format_counts_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 2**32 chunks cannot be written here; the same guard with a limit of 3 can.
    monkeypatch.setattr(envelope, "_MAX_CHUNKS", 3)
    assert _open(_seal(tmp_path, bytes(3 * CHUNK))) == bytes(3 * CHUNK)
    with pytest.raises(ValueError, match=r"^the document is too large for one envelope$"):
        _seal(tmp_path, bytes(3 * CHUNK + 1))


def test_an_envelope_of_more_chunks_than_the_format_counts_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sealed = _seal(tmp_path, bytes(3 * CHUNK + 1))  # four chunks, under the real limit
    monkeypatch.setattr(envelope, "_MAX_CHUNKS", 3)
    assert _open(_seal(tmp_path, bytes(3 * CHUNK))) == bytes(3 * CHUNK)
    with pytest.raises(EnvelopeError) as caught:
        _open(sealed)
    assert str(caught.value) == "the envelope has more chunks than its format allows"
