"""Metadata stripping: what a JPEG or PNG says about where, when and with what it was made.

Privacy by default: EXIF (with its GPS position), XMP, IPTC and comments leave an image
before it is stored; orientation is applied first, the ICC profile stays, and the pixels
are otherwise untouched: kept segments and chunks are copied byte for byte, so decoded
pixels are identical. The one exception is an EXIF orientation of 2..8, which only a
re-encode can apply: a JPEG is then encoded again (quality 95, same chroma subsampling,
ICC and dots per inch kept) and may come out larger than the source; a PNG is re-saved
losslessly (palette, transparency, iCCP, cHRM, cICP, gAMA, sBIT, sRGB and pHYs in inches
kept; other ancillary chunks are not). An animated PNG (acTL) is never re-encoded: its
eXIf goes, its orientation is not applied.

Names in ``Stripped.removed`` and ``find_metadata``'s answer:

    EXIF       JPEG APP1 "Exif", PNG eXIf
    GPS        in addition to EXIF, when its IFD0 points to a GPS IFD (tag 0x8825)
    XMP        JPEG APP1 XMP and extended XMP, PNG iTXt "XML:com.adobe.xmp"
    IPTC       JPEG APP13 "Photoshop 3.0" (image resources, IPTC-IIM among them)
    COMMENT    JPEG COM
    TEXT       PNG tEXt, zTXt, and iTXt other than XMP
    TIME       PNG tIME
    OTHER_APP  any other JPEG APPn segment (kept: APP0 JFIF/JFXX, APP2 ICC, APP14 Adobe)

PDF metadata (the Info dictionary, XMP streams) is out of scope: a PDF is never changed.
"""

from __future__ import annotations

import contextlib
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from PIL import Image, JpegImagePlugin, PngImagePlugin

from berkas.core import jpeg, png
from berkas.core.codes import Code
from berkas.core.content import Kind, Source, open_source
from berkas.core.errors import UnsupportedContent

_PIECE = 1 << 16  # copy buffer; a kept segment or chunk of any size streams through it

# --- JPEG (ITU-T T.81 B.1.1.3, Table B.1; jpeg.py walks the segments) -------------------
_COM = 0xFE
_APP0, _APP1, _APP2, _APP13, _APP14, _APP15 = 0xE0, 0xE1, 0xE2, 0xED, 0xEE, 0xEF
# The longest identifier tested below is extended XMP's 35 bytes.
_IDENT_BYTES = 40
# APP0: JFIF 1.02 (ECMA TR/98, 10.1) and its JFXX extension; both say how to read the
# samples (YCbCr, density), so they stay.
_JFIF = (b"JFIF\x00", b"JFXX\x00")
# APP1: Exif 2.32 (CIPA DC-008) 4.5.4 "Exif\0" then a pad byte, then a TIFF structure.
_EXIF = b"Exif\x00"
_EXIF_HEADER = 6
# APP1: XMP spec part 3 (2016) 1.1.3: the main packet after this namespace, and the
# extended XMP that does not fit 64 KB, split over segments after the second.
_XMP = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
# APP2: ICC.1:2010 B.4, a profile split over numbered segments, all kept in order.
_ICC = b"ICC_PROFILE\x00"
# APP13: Photoshop image resources, where IPTC-IIM lives (IPTC Photo Metadata 2019.1).
_PHOTOSHOP = b"Photoshop 3.0\x00"
# APP14: Adobe TN 5116 6.5.2: its transform flag decides whether 3/4 components are
# YCbCr/YCCK or RGB/CMYK; dropping it changes the colours a decoder produces.
_ADOBE = b"Adobe"

# --- Exif / TIFF (CIPA DC-008 4.5.2 TIFF header, 4.6.2 IFD structure) --------------------
_TIFF_ORDER = {b"II*\x00": "<", b"MM\x00*": ">"}
_ORIENTATION, _GPS_IFD = 0x0112, 0x8825  # 4.6.4 A; 4.6.3.2 GPS IFD pointer
_SHORT, _LONG = 3, 4
# Orientation 2..8 as the transpose that shows the picture upright: the table
# ImageOps.exif_transpose uses, applied to the value read here rather than to Pillow's
# own reading, which also takes XMP tiff:Orientation and PNG "Raw profile" text; so the
# flag returned, find_metadata and the pixels always agree.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# --- PNG (PNG spec 3rd ed., W3C 2025; png.py walks the chunks) ------------------------
_PNG_DROPPED = {
    b"eXIf": "EXIF",  # 11.3.6.1
    b"tEXt": "TEXT",  # 11.3.3.3
    b"zTXt": "TEXT",  # 11.3.3.4
    b"iTXt": "TEXT",  # 11.3.3.5 (or XMP, by keyword)
    b"tIME": "TIME",  # 11.3.5.1
}
# XMP spec part 3 1.1.5: XMP in PNG is an iTXt chunk with this keyword.
_PNG_XMP = b"XML:com.adobe.xmp\x00"
_PNG_KEYWORD_BYTES = 80  # 11.3.3.1: a keyword is 1-79 bytes, then a NUL
# Colour chunks Pillow does not carry through a re-save by itself (iCCP goes through
# icc_profile=); each is a few bytes (11.3.2), at most 13 for cICP.
_PNG_COLOUR = frozenset({b"cHRM", b"cICP", b"gAMA", b"sBIT", b"sRGB"})
_PNG_COLOUR_MAX = 64
# 11.3.4.2: pixels per unit on x and y, then the unit (1: the metre).
_PNG_PHYS_LENGTH = 9
_PER_INCH = 0.0254  # metres; Pillow's dpi= takes inches and writes pHYs in metres


@dataclass(frozen=True, slots=True)
class Stripped:
    """What ``strip_metadata`` did: the names removed (sorted), whether it rotated or
    flipped the image upright, and whether it wrote ``dst`` at all."""

    removed: tuple[str, ...]
    orientation_applied: bool
    changed: bool


@dataclass(slots=True)
class _Plan:
    """The first pass over a file: byte ranges to copy verbatim and what the rest held."""

    keep: list[tuple[int, int]] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)
    orientation: int = 1
    exif_seen: bool = False
    colour: list[tuple[bytes, bytes]] = field(default_factory=list)
    phys: bytes = b""
    animated: bool = False

    def copy(self, start: int, end: int) -> None:
        if self.keep and self.keep[-1][1] == start:
            self.keep[-1] = (self.keep[-1][0], end)
        else:
            self.keep.append((start, end))

    def exif(self, fh: BinaryIO, start: int, end: int) -> None:
        self.removed.add("EXIF")
        if self.exif_seen:  # like Pillow and viewers, the first EXIF block is the one read
            return
        self.exif_seen = True
        orientation, gps = _exif_facts(fh, start, end)
        self.orientation = orientation
        if gps:
            self.removed.add("GPS")

    @property
    def reorients(self) -> bool:
        return self.orientation in _UPRIGHT and not self.animated


def find_metadata(src: Source, kind: Kind) -> tuple[str, ...]:
    """The names (sorted) of what ``strip_metadata`` would remove from ``src``; writes nothing.

    Raises ``UnsupportedContent`` (``image_truncated``, ``image_corrupt``) when the
    segment or chunk structure does not parse.
    """
    if kind is Kind.PDF:
        return ()
    with open_source(src) as fh:
        return tuple(sorted(_scan(fh, kind).removed))


@dataclass(frozen=True, slots=True)
class StripPlan:
    """What stripping ``src`` will do, found by one walk of its segments or chunks:
    ``stripped`` says it (``changed`` False: the stored bytes are the sent ones), and
    ``write_stripped`` carries it out into any writer."""

    src: Source
    kind: Kind
    stripped: Stripped
    _plan: _Plan | None = None


def plan_strip(src: Source, kind: Kind) -> StripPlan:
    """Walk ``src`` (which has passed ``content.inspect`` as ``kind``) and say what
    stripping it removes and whether it turns it upright; writes nothing. Raises
    ``UnsupportedContent`` (``image_truncated``, ``image_corrupt``) when the structure
    does not parse."""
    if kind is Kind.PDF:
        return StripPlan(src, kind, Stripped(removed=(), orientation_applied=False, changed=False))
    with open_source(src) as fh:
        plan = _scan(fh, kind)
    removed = tuple(sorted(plan.removed))
    changed = bool(removed) or plan.reorients
    return StripPlan(
        src, kind, Stripped(removed, plan.reorients, changed), plan if changed else None
    )


def write_stripped(planned: StripPlan, out: BinaryIO) -> None:
    """Write the stripped image ``planned`` describes into ``out`` (left open): kept
    segments and chunks byte for byte, or, to apply an orientation, a re-encode. Nothing
    is written when nothing changes. Raises ``UnsupportedContent`` (``image_corrupt``,
    ``image_too_large``) when a re-encode cannot decode the image; ``OSError`` from ``out``
    passes through."""
    plan = planned._plan
    if plan is None:
        return
    if plan.reorients:
        _reencode(planned.src, out, planned.kind, plan)
        return
    with open_source(planned.src) as fh:
        _copy_ranges(fh, out, plan.keep, planned.kind)


def strip_metadata(src: Path, dst: Path, kind: Kind) -> Stripped:
    """Write ``src`` without its metadata to ``dst``, upright per its EXIF orientation.

    ``src`` has passed ``content.inspect`` as ``kind``; ``dst`` is another path (it is
    truncated first). When there is nothing to remove
    (always for a PDF), ``dst`` is not created and ``changed`` is False. ``dst`` is written
    and closed, not fsynced (the caller decides durability); if anything fails it is
    removed. Raises ``UnsupportedContent`` (``image_truncated``, ``image_corrupt``,
    ``image_too_large``) when the structure does not parse or the image does not decode.
    """
    planned = plan_strip(src, kind)
    if not planned.stripped.changed:
        return planned.stripped
    try:
        with dst.open("wb") as out:
            write_stripped(planned, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            dst.unlink()
        raise
    return planned.stripped


def _scan(fh: BinaryIO, kind: Kind) -> _Plan:
    size = fh.seek(0, 2)
    fh.seek(0)
    try:
        return _scan_jpeg(fh, size) if kind is Kind.JPEG else _scan_png(fh, size)
    except (jpeg.Truncated, png.Truncated) as exc:
        raise _truncated(kind, str(exc)) from exc
    except (jpeg.Corrupt, png.Corrupt) as exc:
        raise _corrupt(kind, str(exc)) from exc
    except struct.error as exc:  # a short read the bounds checks missed: still truncated
        raise _truncated(kind, "inside a marker segment or chunk header") from exc


def _copy_ranges(fh: BinaryIO, out: BinaryIO, ranges: list[tuple[int, int]], kind: Kind) -> None:
    for start, end in ranges:
        fh.seek(start)
        left = end - start
        while left:
            piece = fh.read(min(_PIECE, left))
            if not piece:  # the file shrank between the passes
                raise _truncated(kind, "sooner than it did a moment before")
            out.write(piece)
            left -= len(piece)


# --- JPEG ---------------------------------------------------------------------------------


def _scan_jpeg(fh: BinaryIO, size: int) -> _Plan:
    """Sort the segments before SOS (T.81 B.2.1: SOI, tables and APPn, frame header, scan
    header) into kept and removed. Everything from SOS on (entropy-coded data, any further
    scans, EOI) is copied as is: metadata is only defined before the first scan, so the
    walk stops there."""
    plan = _Plan()
    for segment in jpeg.segments(fh, size):
        code, start = segment.code, segment.start
        if code == jpeg.SOS:
            plan.copy(start, size)
            return plan
        if code == jpeg.EOI:
            break
        if code == jpeg.SOI or code in jpeg.STANDALONE:
            plan.copy(start, segment.end)
            continue
        fh.seek(segment.body)
        name = _jpeg_dropped(code, fh.read(min(segment.end - segment.body, _IDENT_BYTES)))
        if name is None:
            plan.copy(start, segment.end)
        elif name == "EXIF":
            plan.exif(fh, segment.body + _EXIF_HEADER, segment.end)
        else:
            plan.removed.add(name)
    # The reader's last segment is EOI, and it came before any scan.
    raise _corrupt(Kind.JPEG, f"has marker FF D9 at offset {segment.start} before SOS")


def _jpeg_dropped(code: int, ident: bytes) -> str | None:
    """The name a segment is removed under, or None to keep it."""
    if code == _COM:
        return "COMMENT"
    if not _APP0 <= code <= _APP15:
        return None  # DQT, SOFn, DHT, DAC, DRI, DNL, EXP...: the image itself
    if code == _APP0 and ident.startswith(_JFIF):
        return None
    if code == _APP2 and ident.startswith(_ICC):
        return None
    if code == _APP14 and ident.startswith(_ADOBE):
        return None
    if code == _APP1 and ident.startswith(_EXIF):
        return "EXIF"
    if code == _APP1 and ident.startswith(_XMP):
        return "XMP"
    if code == _APP13 and ident.startswith(_PHOTOSHOP):
        return "IPTC"
    return "OTHER_APP"  # MPF, FlashPix, Ducky, maker data...


def _exif_facts(fh: BinaryIO, start: int, end: int) -> tuple[int, bool]:
    """(orientation, has a GPS IFD) from the TIFF structure in ``fh[start:end]``.

    Every offset is checked against ``end`` before it is read. A structure that does not
    parse yields (1, False): the whole block is removed anyway, so nothing of it leaks,
    and a viewer could not have read an orientation from it either.
    """

    def read(offset: int, n: int) -> bytes | None:
        if offset < 0 or start + offset + n > end:
            return None
        fh.seek(start + offset)
        data = fh.read(n)
        return data if len(data) == n else None

    header = read(0, 8)
    order = _TIFF_ORDER.get(header[:4]) if header else None
    if header is None or order is None:
        return 1, False
    (ifd0,) = struct.unpack(order + "I", header[4:])
    count_bytes = read(ifd0, 2)
    if count_bytes is None:
        return 1, False
    (count,) = struct.unpack(order + "H", count_bytes)
    count = min(count, (end - start - ifd0 - 2) // 12)  # a count past the block is cut
    entries = read(ifd0 + 2, 12 * count) or b""
    orientation, gps = 1, False
    for i in range(0, len(entries), 12):
        tag, typ, n = struct.unpack(order + "HHI", entries[i : i + 8])
        if tag == _GPS_IFD:
            gps = True
        elif tag == _ORIENTATION and n >= 1 and typ in (_SHORT, _LONG):
            # 4.6.2: a value of 4 bytes or fewer sits in the entry itself, left-justified.
            fmt = order + ("H" if typ == _SHORT else "I")
            (value,) = struct.unpack_from(fmt, entries, i + 8)
            orientation = value if value in _UPRIGHT else 1
    return orientation, gps


# --- PNG ----------------------------------------------------------------------------------


def _scan_png(fh: BinaryIO, size: int) -> _Plan:
    """Sort the chunks into kept and removed, reading only the few bytes that tell a
    chunk's kind; kept chunks are copied later with their CRCs."""
    plan = _Plan()
    plan.copy(0, len(png.SIGNATURE))
    for chunk in png.chunks(fh, size):
        fh.seek(chunk.data)
        name = _png_dropped(fh, plan, chunk.type, chunk.length)
        if name is None:
            plan.copy(chunk.start, chunk.end)
        elif name == "EXIF":
            # 11.3.6.1: the TIFF header comes first; some writers put JPEG's "Exif\0\0"
            # before it, which Pillow and viewers accept too.
            fh.seek(chunk.data)
            skip = _EXIF_HEADER if fh.read(_EXIF_HEADER).startswith(_EXIF) else 0
            plan.exif(fh, chunk.data + skip, chunk.crc)
        else:
            plan.removed.add(name)
    if chunk.end < size:  # after IEND, padding content.inspect allowed: kept as it was
        plan.copy(chunk.end, size)
    return plan


def _png_dropped(fh: BinaryIO, plan: _Plan, ctype: bytes, length: int) -> str | None:
    """The name a chunk is removed under, or None to keep it; ``fh`` is at its data.
    Notes on ``plan`` what a re-encode needs from the chunks that stay."""
    if ctype == b"iTXt":
        keyword = fh.read(min(length, _PNG_KEYWORD_BYTES))
        return "XMP" if keyword.startswith(_PNG_XMP) else "TEXT"
    if ctype == b"acTL":
        plan.animated = True  # APNG (11.3.6.2)
    elif ctype in _PNG_COLOUR and length <= _PNG_COLOUR_MAX:
        plan.colour.append((ctype, fh.read(length)))
    elif ctype == b"pHYs" and length == _PNG_PHYS_LENGTH:
        plan.phys = fh.read(length)
    return _PNG_DROPPED.get(ctype)


# --- orientation: the one re-encode -------------------------------------------------------


def _reencode(src: Source, out: BinaryIO, kind: Kind, plan: _Plan) -> None:
    """Decode ``src``, turn it upright and encode it into ``out`` with no metadata."""
    method = _UPRIGHT[plan.orientation]
    fmt = "JPEG" if kind is Kind.JPEG else "PNG"
    # As in content.py: a decompression bomb is an error, never a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with open_source(src) as fh, Image.open(fh, formats=[fmt]) as im:
                icc = im.info.get("icc_profile")
                transparency = im.info.get("transparency")
                sampling = JpegImagePlugin.get_sampling(im) if kind is Kind.JPEG else -1
                dpi = _dpi(im.info, plan)
                upright = im.transpose(method)
        except MemoryError:
            raise
        except Exception as exc:
            raise _undecodable(kind, exc) from exc
    # transpose() copies info, and Pillow's JPEG encoder writes info["comment"] back as a
    # COM segment: start from nothing and pass on only what is kept.
    upright.info = {}
    try:
        if kind is Kind.JPEG:
            options: dict[str, object] = {
                "quality": 95,
                "icc_profile": icc,
                "subsampling": sampling,
            }
        else:
            extra = PngImagePlugin.PngInfo()
            for ctype, data in plan.colour:
                extra.add(ctype, data)
            options = {"icc_profile": icc, "pnginfo": extra}
            if transparency is not None:
                options["transparency"] = transparency
        if dpi is not None:
            options["dpi"] = dpi
        upright.save(out, fmt, **options)
    except MemoryError:
        raise
    except OSError as exc:
        if exc.errno is not None:  # the disk, not the image: not the sender's fault
            raise
        raise _undecodable(kind, exc) from exc
    except Exception as exc:
        raise _undecodable(kind, exc) from exc


def _dpi(info: dict[str | tuple[int, int], object], plan: _Plan) -> tuple[float, float] | None:
    """The source's resolution in dots per inch, x and y as they will be once upright.

    JPEG: the JFIF APP0 density when its unit is the inch (JFIF 1.02, "units" 1); Pillow's
    own ``dpi`` may come from the EXIF being removed, so it is not used. PNG: pHYs when
    its unit is the metre. Orientations 5..8 turn the picture a quarter, swapping x and y.
    """
    density: tuple[float, float] | None = None
    jfif = info.get("jfif_density")
    if info.get("jfif_unit") == 1 and isinstance(jfif, tuple) and len(jfif) == 2:
        density = (float(jfif[0]), float(jfif[1]))
    elif plan.phys:
        x, y, unit = struct.unpack(">IIB", plan.phys)
        if unit == 1:
            density = (x * _PER_INCH, y * _PER_INCH)
    if density is None or not all(density):
        return None
    return (density[1], density[0]) if plan.orientation >= 5 else density


# --- errors -------------------------------------------------------------------------------


def _truncated(kind: Kind, where: str) -> UnsupportedContent:
    return UnsupportedContent(
        f"file is a {kind.label} that ends {where} (truncated); upload the complete file.",
        code=Code.IMAGE_TRUNCATED,
    )


def _corrupt(kind: Kind, what: str) -> UnsupportedContent:
    return UnsupportedContent(
        f"file is a {kind.label} that {what} (corrupt); export or scan it again and upload "
        "the new file.",
        code=Code.IMAGE_CORRUPT,
    )


def _undecodable(kind: Kind, exc: Exception) -> UnsupportedContent:
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return UnsupportedContent(
            f"file is a {kind.label} that declares too many pixels to decode safely (a "
            "possible decompression bomb); resize it and upload again.",
            code=Code.IMAGE_TOO_LARGE,
        )
    return _corrupt(kind, "could not be decoded to apply its EXIF orientation")
