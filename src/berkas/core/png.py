"""The one reader of PNG chunks (PNG spec 3rd ed., W3C 2025, 5.3), and the streamed check
of the image data they carry (inflate and scanlines, without a pixel buffer).

Inspection (where the image ends, whether its data is whole), the trailing-data check and
metadata stripping all walk a PNG through ``chunks``; no other module reads chunk headers.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

SIGNATURE = b"\x89PNG\r\n\x1a\n"  # 5.2
MAX_LENGTH = 2**31 - 1  # 5.3: a chunk's length is at most 2^31 - 1
_PIECE = 1 << 16
# Samples per pixel by colour type (11.2.1), and the Adam7 passes (8.2) as (x0, y0, dx, dy).
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = (
    (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
    (0, 1, 1, 2),
)  # fmt: skip
_IHDR_LENGTH = 13  # 11.2.1


class Truncated(EOFError):
    """The file ends too soon; the text says where, finishing "ends ..." ("before its IEND
    chunk")."""


class Corrupt(ValueError):
    """The bytes break the chunk grammar or the image data does not decode."""


class Chunk(NamedTuple):
    """One chunk (5.3): its type and data ``length``; ``start`` is the offset of its length
    field, and ``data``, ``crc`` and ``end`` those of its data, its CRC and the byte after."""

    type: bytes
    start: int
    length: int

    @property
    def data(self) -> int:
        return self.start + 8

    @property
    def crc(self) -> int:
        return self.start + 8 + self.length

    @property
    def end(self) -> int:
        return self.start + 12 + self.length


def chunks(fh: BinaryIO, size: int, *, check_crc: bool = False) -> Iterator[Chunk]:
    """Each chunk of the PNG in ``fh`` (``size`` bytes long) after the signature, up to and
    including IEND. Only headers are read (and, with ``check_crc``, each chunk's data in
    pieces, against its CRC); every read seeks first, so a consumer may read ``fh`` between
    chunks. Raises ``Truncated`` when the file ends first and ``Corrupt`` when a
    header is malformed: a length past 2^31 - 1, or a type not four ASCII letters (5.4).
    """
    fh.seek(0)
    if fh.read(8) != SIGNATURE:
        raise Corrupt("does not start with the PNG signature")
    start = 8
    while True:
        fh.seek(start)
        header = fh.read(8)
        if len(header) < 8:
            raise Truncated("before its IEND chunk")
        length, ctype = struct.unpack(">I4s", header)
        if length > MAX_LENGTH or not ctype.isalpha():
            raise Corrupt(f"has a malformed chunk header at offset {start}")
        chunk = Chunk(ctype, start, length)
        if chunk.end > size:
            raise Truncated(
                f"inside its {ctype.decode('ascii')} chunk at offset {start}, which "
                f"declares {length} bytes"
            )
        if check_crc:
            _check_crc(fh, chunk)
        yield chunk
        if ctype == b"IEND":
            return
        start = chunk.end


def pieces(fh: BinaryIO, chunk: Chunk) -> Iterator[bytes]:
    """The data of ``chunk`` in pieces of at most 64 KiB."""
    at = chunk.data
    while at < chunk.crc:
        fh.seek(at)
        piece = fh.read(min(_PIECE, chunk.crc - at))
        if not piece:  # the file shrank after ``chunks`` checked the length
            raise Truncated(f"inside its {chunk.type.decode('ascii')} chunk at offset {at}")
        yield piece
        at += len(piece)


def _check_crc(fh: BinaryIO, chunk: Chunk) -> None:
    # 5.3: the CRC covers the type and the data, not the length.
    crc = zlib.crc32(chunk.type)
    for piece in pieces(fh, chunk):
        crc = zlib.crc32(piece, crc)
    fh.seek(chunk.crc)
    if fh.read(4) != struct.pack(">I", crc):
        name = chunk.type.decode("ascii")
        raise Corrupt(f"has a CRC that does not match its {name} chunk at offset {chunk.start}")


class _Scanlines:
    """The inflated image data of a PNG, checked as it streams past."""

    def __init__(self, ihdr: bytes) -> None:
        if len(ihdr) != _IHDR_LENGTH:
            raise Corrupt(f"has an IHDR of {len(ihdr)} bytes, not {_IHDR_LENGTH}")
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
        if colour not in _CHANNELS:
            raise Corrupt(f"has an unknown colour type {colour}")
        bits = depth * _CHANNELS[colour]
        passes = _ADAM7 if interlace == 1 else ((0, 0, 1, 1),)
        # Every scanline's length (its filter byte included), pass after pass.
        self._rows: list[int] = []
        for x0, y0, dx, dy in passes:
            pass_w = (width - x0 + dx - 1) // dx if width > x0 else 0
            pass_h = (height - y0 + dy - 1) // dy if height > y0 else 0
            if pass_w:
                self._rows.extend([1 + (pass_w * bits + 7) // 8] * pass_h)
        self.expected = sum(self._rows)
        self.produced = 0
        self._row = 0  # the next scanline
        self._next = 0  # where in the stream it starts

    def feed(self, piece: bytes) -> None:
        end = self.produced + len(piece)
        if end > self.expected:
            raise Corrupt("more image data than the header declares")
        while self._next < end:
            if piece[self._next - self.produced] > 4:  # 9.2: filter types 0-4
                raise Corrupt("unknown scanline filter type")
            self._next += self._rows[self._row]
            self._row += 1
        self.produced = end


def check_image_data(fh: BinaryIO, size: int) -> int:
    """Inflate every IDAT of the PNG in ``fh`` as one stream, in bounded pieces, and check
    what a decoder would: the zlib stream is valid and complete, it holds exactly the
    scanlines IHDR implies, and each scanline starts with a known filter type (0-4).
    Returns the offset just past the IEND chunk, where the PNG ends. Raises ``Truncated``
    or ``Corrupt``; the chunk CRCs and their order are not checked here (the caller's
    decoder does that).
    """
    inflater = zlib.decompressobj()
    lines: _Scanlines | None = None
    end = 0
    try:
        for chunk in chunks(fh, size):
            if chunk.type == b"IHDR":
                fh.seek(chunk.data)
                lines = _Scanlines(fh.read(min(chunk.length, _IHDR_LENGTH + 1)))
            elif chunk.type == b"IDAT" and lines is not None:
                for piece in pieces(fh, chunk):
                    pending = piece
                    while pending:
                        lines.feed(inflater.decompress(pending, _PIECE))
                        pending = inflater.unconsumed_tail
            end = chunk.end
        if lines is None:
            raise Corrupt("no IHDR chunk")
        lines.feed(inflater.flush())
    except zlib.error as exc:
        raise Corrupt(str(exc)) from exc
    if not inflater.eof or lines.produced < lines.expected:
        raise Truncated("image data truncated")
    if inflater.unused_data:
        raise Corrupt("data after the end of the image stream")
    return end
