"""Metadata stripping: what leaves a JPEG or PNG, what stays byte for byte, and upright."""

from __future__ import annotations

import io
import random
import struct
import tracemalloc
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin, PngImagePlugin
from PIL.TiffImagePlugin import IFDRational

from berkas.core.codes import Code
from berkas.core.content import ImageLimits, Kind, inspect
from berkas.core.errors import UnsupportedContent
from berkas.core.metadata import Stripped, find_metadata, strip_metadata

# A position no fixture has by chance: 6 deg 10' 30.12347" S, 106 deg 49' E (the seconds
# are in lowest terms, so they are written as these two numbers).
LATITUDE = ((6, 1), (10, 1), (3_012_347, 100_000))
LONGITUDE = ((106, 1), (49, 1), (0, 1))
XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT_NS = b"http://ns.adobe.com/xmp/extension/\x00"
# A Photoshop image resource block (8BIM 0x0404) holding one IPTC-IIM dataset, 2:120.
IPTC = b"8BIM\x04\x04\x00\x00\x00\x00\x00\x08\x1c\x02x\x00\x03Jkt"
XMP_PACKET = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>secret-xmp</rdf:RDF></x:xmpmeta>'


# --- fixtures built here ------------------------------------------------------------------


def _noise(size: tuple[int, int], mode: str = "RGB", seed: int = 7) -> Image.Image:
    data = random.Random(seed).randbytes(size[0] * size[1] * len(mode))  # noqa: S311 - not a secret
    return Image.frombytes(mode, size, data)


def _gradient(size: tuple[int, int] = (160, 96)) -> Image.Image:
    # Smooth, and not symmetric under any rotation or flip, so a wrong transpose shows.
    w, h = size
    return Image.frombytes(
        "RGB",
        size,
        bytes(
            v
            for y in range(h)
            for x in range(w)
            for v in (x * 255 // w, y * 255 // h, (x + 2 * y) * 255 // (w + 2 * h))
        ),
    )


def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _gps_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "S", tuple(IFDRational(*r) for r in LATITUDE)  # GPSLatitudeRef, -Latitude
    gps[3], gps[4] = "E", tuple(IFDRational(*r) for r in LONGITUDE)
    return exif


def _segment(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + struct.pack(">H", len(payload) + 2) + payload


def _after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _tiff(order: str, entries: list[tuple[int, int, int, bytes]]) -> bytes:
    """A TIFF structure with one IFD0 of (tag, type, count, 4-byte value field)."""
    mark = b"II*\x00" if order == "<" else b"MM\x00*"
    body = struct.pack(order + "H", len(entries))
    for tag, typ, count, value in entries:
        body += struct.pack(order + "HHI", tag, typ, count) + value
    return mark + struct.pack(order + "I", 8) + body + b"\x00\x00\x00\x00"


def _orientation_tiff(order: str, value: int) -> bytes:
    return _tiff(order, [(0x0112, 3, 1, struct.pack(order + "H", value) + b"\x00\x00")])


def _jpeg(image: Image.Image | None = None, **options: object) -> bytes:
    out = io.BytesIO()
    (image or _noise((128, 96))).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def _png(image: Image.Image | None = None, **options: object) -> bytes:
    out = io.BytesIO()
    (image or _noise((96, 64), "RGBA")).save(out, "PNG", **options)
    return out.getvalue()


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def _with_chunks(png: bytes, *chunks: bytes) -> bytes:
    """``chunks`` inserted right after IHDR (8-byte signature, 25-byte IHDR)."""
    return png[:33] + b"".join(chunks) + png[33:]


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos : pos + 12 + length]))
        pos += 12 + length
    return out


def _phys(path: Path) -> tuple[int, int, int]:
    (raw,) = [raw for ctype, raw in _png_chunks(path.read_bytes()) if ctype == b"pHYs"]
    return struct.unpack(">IIB", raw[8:17])


def _jpeg_segments(data: bytes) -> list[bytes]:
    """Every marker segment before SOS, whole (marker, length and payload)."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        out.append(data[pos : pos + 2 + length])
        pos += 2 + length
    return out


def _pixels(path: Path | bytes) -> tuple[tuple[int, int], str, bytes]:
    with Image.open(io.BytesIO(path) if isinstance(path, bytes) else path) as im:
        return im.size, im.mode, im.tobytes()


def _write(tmp_path: Path, data: bytes, name: str = "src") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _inspect(path: Path, kind: Kind) -> None:
    data = path.read_bytes()
    inspect(path, head=data[:16], size=len(data), allowed={kind}, label="T", limits=ImageLimits())


@pytest.fixture
def tagged_jpeg() -> bytes:
    """EXIF with GPS, a COM, XMP and extended XMP, Photoshop IPTC, a vendor APP4, ICC."""
    jpeg = _jpeg(exif=_gps_exif().tobytes(), icc_profile=_icc(), comment=b"shot at home")
    return _after_soi(
        jpeg,
        _segment(0xE1, XMP_NS + XMP_PACKET),
        _segment(0xE1, XMP_EXT_NS + b"0" * 32 + b"\x00\x00\x00\x10\x00\x00\x00\x00more-xmp"),
        _segment(0xED, b"Photoshop 3.0\x00" + IPTC),
        _segment(0xE4, b"VendorData\x00" + b"\x00" * 16),
    )


# --- JPEG ---------------------------------------------------------------------------------


def test_jpeg_loses_exif_gps_xmp_iptc_comment_and_keeps_pixels_and_icc(tmp_path, tagged_jpeg):
    src, dst = _write(tmp_path, tagged_jpeg), tmp_path / "dst"

    result = strip_metadata(src, dst, Kind.JPEG)

    assert result == Stripped(
        removed=("COMMENT", "EXIF", "GPS", "IPTC", "OTHER_APP", "XMP"),
        orientation_applied=False,
        changed=True,
    )
    out = dst.read_bytes()
    for order in "<>":
        assert struct.pack(order + "II", *LATITUDE[2]) not in out
    secrets = (b"PhoneMaker", b"shot at home", b"secret-xmp", b"more-xmp", IPTC, b"VendorData")
    for secret in secrets:
        assert secret not in out
    with Image.open(dst) as im:
        assert not im.getexif()
        assert im.info["icc_profile"] == _icc()
        assert "comment" not in im.info
        assert "xmp" not in im.info
    assert _pixels(dst) == _pixels(src)
    _inspect(dst, Kind.JPEG)


def test_jpeg_keeps_jfif_adobe_and_every_table_byte_for_byte(tmp_path):
    jpeg = _jpeg(_noise((64, 48)), icc_profile=_icc())
    adobe = _segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")
    source = _after_soi(jpeg, _segment(0xFE, b"note"))
    # APP14 goes after JFIF, as Adobe writers put it.
    jfif_end = 2 + 2 + struct.unpack(">H", jpeg[4:6])[0]
    source = source[: jfif_end + 8] + adobe + source[jfif_end + 8 :]
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    assert strip_metadata(src, dst, Kind.JPEG).removed == ("COMMENT",)

    out = dst.read_bytes()
    kept = [s for s in _jpeg_segments(source) if s[1] != 0xFE]
    assert _jpeg_segments(out) == kept
    assert any(s[4:9] == b"JFIF\x00" for s in kept)
    assert adobe in kept
    # From SOS to the end, the file is the source's.
    sos = source.index(b"\xff\xda")
    assert out.endswith(source[sos:])
    assert len(out) == len(source) - len(_segment(0xFE, b"note"))


def test_jpeg_icc_over_several_app2_segments_stays_whole_and_in_order(tmp_path):
    icc = bytes(random.Random(3).randbytes(150_000))  # noqa: S311 - not a secret
    source = _jpeg(_noise((32, 32)), icc_profile=icc, comment=b"c")
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    strip_metadata(src, dst, Kind.JPEG)

    segments = [s for s in _jpeg_segments(dst.read_bytes()) if s[1] == 0xE2]
    assert len(segments) == 3
    with Image.open(dst) as im:
        assert im.info["icc_profile"] == icc


def test_clean_jpeg_is_left_alone_and_no_dst_is_created(tmp_path):
    src, dst = _write(tmp_path, _jpeg()), tmp_path / "dst"

    assert strip_metadata(src, dst, Kind.JPEG) == Stripped((), False, False)
    assert find_metadata(src, Kind.JPEG) == ()
    assert not dst.exists()


def test_repeated_segments_are_named_once_and_unknown_apps_are_other_app(tmp_path):
    source = _after_soi(
        _jpeg(),
        _segment(0xFE, b"one"),
        _segment(0xFE, b"two"),
        _segment(0xE3, b"vendor"),
        _segment(0xE1, b"not exif, not xmp"),
        _segment(0xE0, b"AVI1\x00"),
    )
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    assert strip_metadata(src, dst, Kind.JPEG).removed == ("COMMENT", "OTHER_APP")
    assert _pixels(dst) == _pixels(src)


@pytest.mark.parametrize("order", ["<", ">"])
def test_jpeg_orientation_6_is_applied_in_both_byte_orders(tmp_path, order):
    image = _gradient()
    exif = b"Exif\x00\x00" + _orientation_tiff(order, 6)
    source = _after_soi(_jpeg(image, icc_profile=_icc(), dpi=(300, 200)), _segment(0xE1, exif))
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    result = strip_metadata(src, dst, Kind.JPEG)

    assert result == Stripped(("EXIF",), orientation_applied=True, changed=True)
    with Image.open(src) as im:
        expected = ImageOps.exif_transpose(im)
    with Image.open(dst) as out:
        assert out.size == (96, 160) == expected.size
        assert not out.getexif()
        assert out.info["icc_profile"] == _icc()
        assert out.info["dpi"] == (200, 300)
        diff = sum(abs(a - b) for a, b in zip(out.tobytes(), expected.tobytes(), strict=True))
    assert diff / len(expected.tobytes()) < 2.0
    _inspect(dst, Kind.JPEG)


@pytest.mark.parametrize(("mode", "first_app"), [("L", 0xE0), ("CMYK", 0xEE)])
def test_grey_and_cmyk_jpegs_are_turned_upright_in_their_own_mode(tmp_path, mode, first_app):
    exif = _segment(0xE1, b"Exif\x00\x00" + _orientation_tiff("<", 5))
    src = _write(tmp_path, _after_soi(_jpeg(_gradient().convert(mode)), exif))
    dst = tmp_path / "dst"

    assert strip_metadata(src, dst, Kind.JPEG).orientation_applied

    with Image.open(src) as im:
        expected = ImageOps.exif_transpose(im)
    with Image.open(dst) as out:
        assert (out.mode, out.size) == (mode, expected.size)
        diff = sum(abs(a - b) for a, b in zip(out.tobytes(), expected.tobytes(), strict=True))
    assert diff / len(expected.tobytes()) < 2.0
    # CMYK needs its Adobe APP14 to be read with the right colours (Adobe TN 5116).
    assert _jpeg_segments(dst.read_bytes())[0][1] == first_app


def test_reencoded_jpeg_carries_no_comment_gps_or_xmp(tmp_path):
    # Pillow's encoder writes info["comment"] back unless told otherwise.
    jpeg = _jpeg(_gradient(), exif=_gps_exif(orientation=8).tobytes(), comment=b"shot at home")
    source = _after_soi(jpeg, _segment(0xE1, XMP_NS + XMP_PACKET))
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    result = strip_metadata(src, dst, Kind.JPEG)

    assert result.orientation_applied
    assert result.removed == ("COMMENT", "EXIF", "GPS", "XMP")
    out = dst.read_bytes()
    assert b"shot at home" not in out
    assert b"secret-xmp" not in out
    assert b"PhoneMaker" not in out
    assert {s[1] for s in _jpeg_segments(out)} <= {0xE0, 0xDB, 0xC0, 0xC4, 0xDD}


def test_reencoded_jpeg_keeps_the_chroma_subsampling(tmp_path):
    exif = _segment(0xE1, b"Exif\x00\x00" + _orientation_tiff("<", 3))
    for subsampling in (0, 2):  # 4:4:4, 4:2:0
        src = _write(tmp_path, _after_soi(_jpeg(_gradient(), subsampling=subsampling), exif))
        dst = tmp_path / f"dst{subsampling}"
        strip_metadata(src, dst, Kind.JPEG)
        with Image.open(dst) as im:
            assert JpegImagePlugin.get_sampling(im) == subsampling


def test_broken_exif_is_removed_without_reorienting(tmp_path):
    # IFD0 offset far past the block; an orientation entry with a count of 0.
    bad_offset = b"Exif\x00\x00II*\x00" + struct.pack("<I", 60_000)
    zero_count = b"Exif\x00\x00" + _tiff("<", [(0x0112, 3, 0, b"\x06\x00\x00\x00")])
    for n, exif in enumerate((bad_offset, zero_count, b"Exif\x00\x00XX")):
        src = _write(tmp_path, _after_soi(_jpeg(), _segment(0xE1, exif)), f"src{n}")
        dst = tmp_path / f"dst{n}"
        assert strip_metadata(src, dst, Kind.JPEG) == Stripped(("EXIF",), False, True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns of the source's corrupt EXIF
            assert _pixels(dst) == _pixels(src)


def test_only_the_first_exif_block_decides_the_orientation(tmp_path):
    # Pillow and viewers read the first; a second one must not turn the picture.
    first = _segment(0xE1, b"Exif\x00\x00" + _orientation_tiff("<", 1))
    second = _segment(0xE1, b"Exif\x00\x00" + _orientation_tiff("<", 6))
    src, dst = _write(tmp_path, _after_soi(_jpeg(), first, second)), tmp_path / "dst"

    assert strip_metadata(src, dst, Kind.JPEG) == Stripped(("EXIF",), False, True)
    assert _pixels(dst) == _pixels(src)


@pytest.mark.parametrize(
    ("cut", "code"),
    [
        # An APP1 declaring 0x4000 bytes where the file ends after 10.
        (lambda j: j[:2] + b"\xff\xe1\x40\x00Exif\x00\x00", Code.IMAGE_TRUNCATED),
        (lambda j: j[:2] + b"\xff\xe1\x00\x01" + j[2:], Code.IMAGE_CORRUPT),  # length < 2
        (lambda j: j[:2] + b"\x00\x00" + j[2:], Code.IMAGE_CORRUPT),  # no marker
        (lambda j: j[:2] + b"\xff\xd9", Code.IMAGE_CORRUPT),  # EOI before any scan
        (lambda j: j[:2] + b"\xff\xfe\x00\x10no sos", Code.IMAGE_TRUNCATED),
        (lambda j: j[:2] + b"\xff", Code.IMAGE_TRUNCATED),
        (lambda j: b"\x00" + j, Code.IMAGE_CORRUPT),
    ],
)
def test_malformed_jpeg_structure_is_refused_and_leaves_no_dst(tmp_path, cut, code):
    src, dst = _write(tmp_path, cut(_jpeg(comment=b"c"))), tmp_path / "dst"

    with pytest.raises(UnsupportedContent) as caught:
        strip_metadata(src, dst, Kind.JPEG)
    assert caught.value.code is code
    assert "JPEG" in caught.value.message
    with pytest.raises(UnsupportedContent):
        find_metadata(src, Kind.JPEG)
    assert not dst.exists()


def test_undecodable_jpeg_in_the_reencode_path_removes_the_partial_dst(tmp_path):
    exif = _segment(0xE1, b"Exif\x00\x00" + _orientation_tiff(">", 6))
    whole = _after_soi(_jpeg(_noise((256, 256))), exif)
    src, dst = _write(tmp_path, whole[: len(whole) // 2]), tmp_path / "dst"

    with pytest.raises(UnsupportedContent) as caught:
        strip_metadata(src, dst, Kind.JPEG)
    assert caught.value.code is Code.IMAGE_CORRUPT
    assert not dst.exists()


# --- PNG ----------------------------------------------------------------------------------


def _tagged_png(image: Image.Image | None = None, orientation: int | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Budi Santoso")
    info.add_text("Comment", "compressed comment " * 20, zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP_PACKET.decode())
    info.add_itxt("Description", "rumah saya", lang="id")
    info.add(b"tIME", struct.pack(">HBBBBB", 2026, 1, 2, 3, 4, 5))
    exif = _gps_exif(orientation)
    png = _png(image, pnginfo=info, exif=exif.tobytes(), icc_profile=_icc(), dpi=(300, 150))
    gamma = _chunk(b"gAMA", struct.pack(">I", 45455))
    return _with_chunks(png, gamma)


def test_png_loses_text_xmp_exif_and_time_and_keeps_every_other_chunk(tmp_path):
    source = _tagged_png()
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    result = strip_metadata(src, dst, Kind.PNG)

    assert result == Stripped(("EXIF", "GPS", "TEXT", "TIME", "XMP"), False, True)
    dropped = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}
    kept = [raw for ctype, raw in _png_chunks(source) if ctype not in dropped]
    assert _png_chunks(dst.read_bytes()) == [(raw[4:8], raw) for raw in kept]
    assert {raw[4:8] for raw in kept} >= {b"IHDR", b"iCCP", b"gAMA", b"pHYs", b"IDAT", b"IEND"}
    out = dst.read_bytes()
    for secret in (b"Budi", b"rumah", b"secret-xmp", b"PhoneMaker"):
        assert secret not in out
    assert struct.pack("<II", *LATITUDE[2]) not in out
    with Image.open(dst) as im:
        assert im.info["icc_profile"] == _icc()
    assert _pixels(dst) == _pixels(src)
    _inspect(dst, Kind.PNG)


def test_png_orientation_3_is_applied_losslessly_keeping_colour_chunks(tmp_path):
    src, dst = _write(tmp_path, _tagged_png(orientation=3)), tmp_path / "dst"

    result = strip_metadata(src, dst, Kind.PNG)

    assert result == Stripped(("EXIF", "GPS", "TEXT", "TIME", "XMP"), True, True)
    with Image.open(src) as im:
        expected = ImageOps.exif_transpose(im)
    assert _pixels(dst) == (expected.size, expected.mode, expected.tobytes())
    chunks = {ctype for ctype, _ in _png_chunks(dst.read_bytes())}
    assert b"gAMA" in chunks
    assert _phys(dst) == _phys(src)  # pixels per metre, as they were
    assert not chunks & {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}
    with Image.open(dst) as im:
        assert im.info["icc_profile"] == _icc()
        assert im.info["gamma"] == pytest.approx(0.45455)
    _inspect(dst, Kind.PNG)


@pytest.mark.parametrize("order", ["<", ">"])
def test_palette_png_orientation_8_keeps_palette_and_transparency(tmp_path, order):
    image = _gradient((40, 24)).quantize(16)
    image.info["transparency"] = 0
    exif = _chunk(b"eXIf", _orientation_tiff(order, 8))
    png = _png(image, transparency=0, dpi=(300, 150))
    src, dst = _write(tmp_path, _with_chunks(png, exif)), tmp_path / "d"

    assert strip_metadata(src, dst, Kind.PNG) == Stripped(("EXIF",), True, True)

    with Image.open(src) as im:
        expected = im.transpose(Image.Transpose.ROTATE_90)
        palette = im.getpalette()
    with Image.open(dst) as out:
        assert out.mode == "P"
        assert out.size == (24, 40)
        assert out.tobytes() == expected.tobytes()
        assert out.getpalette() == palette
        assert out.info["transparency"] == 0
    x, y, unit = _phys(src)
    assert _phys(dst) == (y, x, unit)  # a quarter turn


def test_animated_png_loses_exif_but_is_never_reencoded(tmp_path):
    frames = [_noise((32, 24), seed=n) for n in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:], duration=100)
    exif = _chunk(b"eXIf", _orientation_tiff("<", 6))
    source = _with_chunks(out.getvalue(), exif)
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    assert strip_metadata(src, dst, Kind.PNG) == Stripped(("EXIF",), False, True)
    assert dst.read_bytes() == source.replace(exif, b"")


def test_clean_png_and_pdf_are_left_alone(tmp_path):
    png = _write(tmp_path, _png(icc_profile=_icc()), "png")
    pdf = _write(tmp_path, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n...%%EOF\n", "pdf")
    for src, kind in ((png, Kind.PNG), (pdf, Kind.PDF)):
        dst = tmp_path / f"dst-{kind.extension}"
        assert strip_metadata(src, dst, kind) == Stripped((), False, False)
        assert find_metadata(src, kind) == ()
        assert not dst.exists()


@pytest.mark.parametrize(
    ("cut", "code"),
    [
        (lambda p: p[:-20], Code.IMAGE_TRUNCATED),  # the IDAT declares more than is left
        (lambda p: p[:-12], Code.IMAGE_TRUNCATED),  # no IEND
        (lambda p: p[:33] + b"\xff\xff\xff\xfftEXt" + p[33:], Code.IMAGE_CORRUPT),  # > 2^31-1
        (lambda p: p[:33] + b"\x00\x00\x00\x00t3Xt" + p[33:], Code.IMAGE_CORRUPT),
        (lambda p: b"\x89PNG\r\n\x1a\x00" + p[8:], Code.IMAGE_CORRUPT),
    ],
)
def test_malformed_png_structure_is_refused_and_leaves_no_dst(tmp_path, cut, code):
    src, dst = _write(tmp_path, cut(_tagged_png())), tmp_path / "dst"

    with pytest.raises(UnsupportedContent) as caught:
        strip_metadata(src, dst, Kind.PNG)
    assert caught.value.code is code
    assert "PNG" in caught.value.message
    assert not dst.exists()


def test_png_padding_after_iend_is_kept_as_inspect_allowed_it(tmp_path):
    source = _with_chunks(_png(), _chunk(b"tIME", b"\x07\xea\x01\x02\x03\x04\x05")) + b"\x00" * 7
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    assert strip_metadata(src, dst, Kind.PNG).removed == ("TIME",)
    assert dst.read_bytes().endswith(b"IEND\xaeB`\x82" + b"\x00" * 7)
    _inspect(dst, Kind.PNG)


def test_a_decompression_bomb_met_in_the_reencode_is_refused_and_leaves_no_dst(tmp_path):
    # 10000 x 10000 grey pixels declared (over Pillow's bomb warning), a tiny IDAT.
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 10_000, 10_000, 8, 0, 0, 0, 0))
    exif = _chunk(b"eXIf", _orientation_tiff("<", 6))
    idat = _chunk(b"IDAT", zlib.compress(b"\x00" * 10_001))
    source = b"\x89PNG\r\n\x1a\n" + ihdr + exif + idat + _chunk(b"IEND", b"")
    src, dst = _write(tmp_path, source), tmp_path / "dst"

    with pytest.raises(UnsupportedContent) as caught:
        strip_metadata(src, dst, Kind.PNG)
    assert caught.value.code is Code.IMAGE_TOO_LARGE
    assert not dst.exists()


def test_large_png_streams_through_in_bounded_memory(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Budi")
    src = _write(tmp_path, _png(_noise((1900, 1800)), pnginfo=info, compress_level=1))
    assert src.stat().st_size > 10_000_000
    dst = tmp_path / "dst"

    tracemalloc.start()
    try:
        result = strip_metadata(src, dst, Kind.PNG)
        found = find_metadata(src, Kind.PNG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.removed == found == ("TEXT",)
    assert peak < 2_000_000
    assert dst.stat().st_size == src.stat().st_size - 12 - len(b"Author\x00Budi")


# --- the dry run ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_tagged_png, Kind.PNG),
        (lambda: _tagged_png(orientation=6), Kind.PNG),
        (lambda: _jpeg(exif=_gps_exif(orientation=6).tobytes(), comment=b"x"), Kind.JPEG),
        (lambda: _after_soi(_jpeg(), _segment(0xE1, XMP_EXT_NS + b"x")), Kind.JPEG),
        (lambda: _jpeg(icc_profile=_icc()), Kind.JPEG),
    ],
)
def test_find_metadata_names_what_strip_metadata_removes_and_writes_nothing(tmp_path, make, kind):
    src = _write(tmp_path, make())
    before = set(tmp_path.iterdir())

    found = find_metadata(src, kind)

    assert set(tmp_path.iterdir()) == before
    assert found == strip_metadata(src, tmp_path / "dst", kind).removed
