"""The one reader of JPEG marker segments (ITU-T T.81 B.1.1.3, Table B.1): where each
segment starts and ends, across the entropy-coded data, up to the EOI that ends the image.

Inspection (where the image ends), the trailing-data check and metadata stripping all walk
a JPEG through ``segments``; no other module reads markers. Two parsers of one grammar
disagree somewhere, and in an intake service that disagreement is an attack.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
# TEM and RSTn stand alone (Table B.1); every other marker is followed by a two-byte
# segment length that counts itself (B.1.1.4).
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
# Inside entropy-coded data a 0xFF byte is stuffed with 0x00 and RSTn markers interleave
# the data (B.1.1.5, F.1.2.3); any other FF xx is the marker that ends the scan. 0xFF may
# repeat as fill before a marker (B.1.1.2): the match is the run's last FF.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PIECE = 1 << 16


class Truncated(EOFError):
    """The file ends too soon; the text says where, finishing "ends ..." ("inside a marker")."""


class Corrupt(ValueError):
    """The bytes break the marker grammar; the text says how ("has no marker at ...")."""


class Segment(NamedTuple):
    """One marker and the bytes it governs. ``start`` is the offset of its first FF (fill
    bytes included), ``body`` where the payload starts (past the length field), ``end``
    one past the payload; a standalone marker has ``body == end``. After an SOS segment
    (its end: the scan header's) the entropy-coded data runs to the next segment's start.
    """

    code: int
    start: int
    body: int
    end: int


class _Cursor:
    """Forward reads over ``fh`` in pieces of 64 KiB. It seeks before every read, so a
    consumer may read ``fh`` between segments."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._buf = b""
        self._base = 0  # the file offset of _buf[0]
        self._at = 0  # the index in _buf of the next byte

    @property
    def pos(self) -> int:
        """The file offset of the next byte."""
        return self._base + self._at

    def _fill(self, n: int) -> bool:
        """Make ``n`` bytes available at ``pos``; False when the file ends first."""
        while len(self._buf) - self._at < n:
            self._fh.seek(self._base + len(self._buf))
            more = self._fh.read(_PIECE)
            if not more:
                return False
            self._buf = self._buf[self._at :] + more
            self._base += self._at
            self._at = 0
        return True

    def byte(self) -> int | None:
        if self._at >= len(self._buf) and not self._fill(1):
            return None
        self._at += 1
        return self._buf[self._at - 1]

    def take(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at the file's end)."""
        if len(self._buf) - self._at < n:
            self._fill(n)
        out = self._buf[self._at : self._at + n]
        self._at += len(out)
        return out

    def skip_to(self, offset: int) -> None:
        if offset - self._base <= len(self._buf):
            self._at = offset - self._base
        else:  # past what is read: the next read seeks there
            self._buf, self._base, self._at = b"", offset, 0

    def skip_scan(self) -> None:
        """Move to the FF of the marker that ends the entropy-coded data here."""
        while True:
            found = _SCAN_END.search(self._buf, self._at)
            if found is not None:
                self._at = found.start()
                return
            # A final FF may be fill, or a marker's first byte, split across two pieces.
            self._at = len(self._buf) - self._buf.endswith(b"\xff")
            if not self._fill(2):
                raise Truncated("inside its image data")


def segments(fh: BinaryIO, size: int) -> Iterator[Segment]:
    """Each segment of the JPEG in ``fh`` (``size`` bytes long), SOI first and EOI last.

    Segments are skipped by their length, which must fit in the file, so a whole JPEG
    inside one (the EXIF thumbnail in APP1, CIPA DC-008 4.5) is never walked; the
    entropy-coded data after each SOS is skipped to the marker that ends it, and a
    progressive file's further scans (G.1.1) follow in turn. Raises ``Truncated`` when the
    file ends first and ``Corrupt`` when the markers do not parse. An EOI before any SOS is
    yielded as found: what it means is the consumer's to say.
    """
    cursor = _Cursor(fh)
    if cursor.take(2) != b"\xff\xd8":
        raise Corrupt("does not start with an SOI marker")
    yield Segment(SOI, 0, 2, 2)
    scanned = False
    while True:
        start = cursor.pos
        code = _marker(cursor, start, scanned=scanned)
        if code == EOI or code in STANDALONE:
            yield Segment(code, start, cursor.pos, cursor.pos)
            if code == EOI:
                return
            continue
        if code in (0x00, SOI):  # a stuffed zero or a second SOI: not this grammar
            place = f"has marker FF {code:02X} at offset {start}"
            raise Corrupt(place if scanned else place + " before SOS")
        body, end = _payload(cursor, code, start, size)
        yield Segment(code, start, body, end)
        cursor.skip_to(end)
        if code == SOS:
            scanned = True
            cursor.skip_scan()


def _marker(cursor: _Cursor, start: int, *, scanned: bool) -> int:
    """The code of the marker at ``start``, past any fill bytes (B.1.1.2)."""
    pair = cursor.take(2)
    if not pair:
        if scanned:
            raise Truncated("before its EOI marker")
        raise Truncated("before its image data, with no SOS marker")
    if pair[0] != 0xFF:
        raise Corrupt(f"has no marker at offset {start} where one must be")
    code = pair[1] if len(pair) == 2 else None
    while code == 0xFF:
        code = cursor.byte()
    if code is None:
        raise Truncated("inside a marker")
    return code


def _payload(cursor: _Cursor, code: int, start: int, size: int) -> tuple[int, int]:
    """Where the payload of the segment whose length field is next starts and ends; the
    length counts its own two bytes (B.1.1.4) and must fit in the file."""
    header = cursor.take(2)
    if len(header) < 2:
        raise Truncated(f"inside the marker FF {code:02X} at offset {start}")
    length = header[0] << 8 | header[1]
    if length < 2:
        raise Corrupt(f"has a marker FF {code:02X} segment shorter than 2 bytes")
    body = cursor.pos
    end = body + length - 2
    if end > size:
        raise Truncated(
            f"inside the marker FF {code:02X} segment at offset {start}, which declares "
            f"{length} bytes"
        )
    return body, end


def image_end(fh: BinaryIO, size: int) -> int:
    """Offset just past the EOI that ends the main image of the JPEG in ``fh``: the first
    FF D9 in the file is not the end (an EXIF thumbnail has its own). Raises ``Truncated``
    or ``Corrupt`` as ``segments`` does."""
    for segment in segments(fh, size):
        if segment.code == EOI:
            return segment.end
    raise AssertionError("segments() ends with an EOI or raises")
