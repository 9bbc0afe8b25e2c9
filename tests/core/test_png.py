"""The PNG chunk reader: real files walk to IEND, hostile headers are refused."""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from collections.abc import Callable

import pytest

from berkas.core import png
from berkas.core.png import Chunk
from tests.support import corpus

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes, *, check_crc: bool = False) -> list[Chunk]:
    return list(png.chunks(io.BytesIO(data), len(data), check_crc=check_crc))


def _after_ihdr(image: bytes, *inserted: bytes) -> bytes:
    return image[:33] + b"".join(inserted) + image[33:]


def _raises(data: bytes, error: type[Exception], *, check_crc: bool = False) -> str:
    with pytest.raises(error) as caught:
        _chunks(data, check_crc=check_crc)
    return str(caught.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda: corpus.png((64, 48)),
        lambda: corpus.png((64, 48), "P"),
        lambda: corpus.png_interlaced((67, 45), "RGB"),
        lambda: corpus.png_16bit((32, 24)),
        corpus.png_with_zip_chunk,
    ],
    ids=["rgba", "palette", "interlaced", "16-bit", "private-chunk"],
)
def test_a_real_png_walks_chunk_by_chunk_to_iend(make: Callable[[], bytes]) -> None:
    data = make()

    chunks = _chunks(data, check_crc=True)

    assert chunks[0].type == b"IHDR"
    assert chunks[0].start == len(SIGNATURE)
    assert chunks[-1].type == b"IEND"
    assert chunks[-1].end == len(data)
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    for chunk in chunks:
        assert data[chunk.start : chunk.data] == struct.pack(">I", chunk.length) + chunk.type
        body = data[chunk.data : chunk.crc]
        assert data[chunk.crc : chunk.end] == struct.pack(">I", zlib.crc32(chunk.type + body))


def test_the_walk_stops_at_iend_whatever_follows() -> None:
    data = corpus.png((16, 16)) + b"\x00\x00\x00\x00IEND" + b"trailing"

    assert _chunks(data)[-1].end == len(data) - 16


def test_a_length_of_2_to_the_31_is_corrupt() -> None:
    data = _after_ihdr(corpus.png((16, 16)), struct.pack(">I", 2**31) + b"tEXt")

    assert _raises(data, png.Corrupt) == "has a malformed chunk header at offset 33"


def test_the_largest_legal_length_is_checked_against_the_file_size() -> None:
    data = _after_ihdr(corpus.png((16, 16)), struct.pack(">I", 2**31 - 1) + b"tEXt")

    text = _raises(data, png.Truncated)

    assert text == "inside its tEXt chunk at offset 33, which declares 2147483647 bytes"


@pytest.mark.parametrize("ctype", [b"t3Xt", b"ab_c", b"ab c", b"\xe9bcd"])
def test_a_type_that_is_not_four_ascii_letters_is_corrupt(ctype: bytes) -> None:
    # PNG 3rd ed. 5.4: A-Z and a-z only. Pillow accepts any word character.
    data = _after_ihdr(corpus.png((16, 16)), corpus.chunk(ctype, b"x"))

    assert _raises(data, png.Corrupt) == "has a malformed chunk header at offset 33"


def test_a_chunk_running_past_the_end_is_truncated() -> None:
    whole = corpus.png((64, 48))

    assert "IDAT chunk at offset" in _raises(whole[:-40], png.Truncated)


def test_a_png_without_iend_is_truncated() -> None:
    assert _raises(corpus.png((16, 16))[:-12], png.Truncated) == "before its IEND chunk"


def test_a_wrong_signature_is_corrupt() -> None:
    data = b"\x89PNG\r\n\x1a\x00" + corpus.png((16, 16))[8:]

    assert _raises(data, png.Corrupt) == "does not start with the PNG signature"


def test_crcs_are_checked_only_when_asked() -> None:
    data = bytearray(corpus.png((16, 16)))
    ihdr = _chunks(bytes(data))[0]
    data[ihdr.crc] ^= 0x01

    assert _chunks(bytes(data))[-1].type == b"IEND"
    text = _raises(bytes(data), png.Corrupt, check_crc=True)
    assert text == "has a CRC that does not match its IHDR chunk at offset 8"


def test_chunk_data_is_read_in_bounded_pieces() -> None:
    big = bytes(range(256)) * 1000  # 256,000 bytes: four pieces
    data = _after_ihdr(corpus.png((16, 16)), corpus.chunk(b"prVt", big))
    fh = io.BytesIO(data)
    private = next(c for c in png.chunks(fh, len(data)) if c.type == b"prVt")

    pieces = list(png.pieces(fh, private))

    assert b"".join(pieces) == big
    assert max(len(p) for p in pieces) == 1 << 16


# --- the image data, as a stream ----------------------------------------------------------


def test_the_image_data_check_returns_where_iend_ends() -> None:
    data = corpus.png((64, 48)) + b"\x00" * 9

    assert png.check_image_data(io.BytesIO(data), len(data)) == len(data) - 9


def test_an_idat_larger_than_a_piece_inflates_across_pieces() -> None:
    # One IDAT of incompressible data, several pieces long, as some encoders write it.
    rows = b"".join(b"\x00" + bytes(range(256)) * 3 for _ in range(200))
    ihdr = struct.pack(">IIBBBBB", 256, 200, 8, 2, 0, 0, 0)
    idat = zlib.compress(rows, 0)
    assert len(idat) > 2 << 16
    data = (
        SIGNATURE
        + corpus.chunk(b"IHDR", ihdr)
        + corpus.chunk(b"IDAT", idat)
        + corpus.chunk(b"IEND", b"")
    )

    assert png.check_image_data(io.BytesIO(data), len(data)) == len(data)


@pytest.mark.parametrize(
    ("ihdr", "text"),
    [
        (struct.pack(">IIBBBBB", 4, 4, 8, 5, 0, 0, 0), "has an unknown colour type 5"),
        (struct.pack(">IIBBBBBB", 4, 4, 8, 0, 0, 0, 0, 0), "has an IHDR of 14 bytes, not 13"),
    ],
)
def test_an_ihdr_the_scanline_check_cannot_use_is_corrupt(ihdr: bytes, text: str) -> None:
    data = (
        SIGNATURE
        + corpus.chunk(b"IHDR", ihdr)
        + corpus.chunk(b"IDAT", zlib.compress(b"\x00" * 20))
        + corpus.chunk(b"IEND", b"")
    )

    with pytest.raises(png.Corrupt, match=text):
        png.check_image_data(io.BytesIO(data), len(data))


def test_the_readers_errors_are_the_builtins_consumers_map() -> None:
    # content.py maps EOFError to image_truncated and ValueError to image_corrupt.
    assert issubclass(png.Truncated, EOFError)
    assert issubclass(png.Corrupt, ValueError)
