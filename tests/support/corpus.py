"""Image and PDF fixtures, good and hostile, built byte by byte here (nothing committed).

Everything is deterministic: noise comes from seeded generators, PDFs are written by hand
(so each hostile construct is exactly the one named) or by pypdf's writer.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib

from PIL import Image
from pypdf import PdfWriter
from pypdf.actions import JavaScript, PageTrigger
from pypdf.generic import DictionaryObject, NameObject, TextStringObject

# --- images -----------------------------------------------------------------------------


def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 7) -> Image.Image:
    """Noise, so encoders cannot shrink the data to a few bytes (a cut really cuts)."""
    data = random.Random(seed).randbytes(size[0] * size[1] * len(mode))  # noqa: S311
    return Image.frombytes(mode, size, data)


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def jpeg(size: tuple[int, int] = (320, 240), mode: str = "RGB", **options: object) -> bytes:
    return encode(noise(size, mode), "JPEG", quality=85, **options)


def png(size: tuple[int, int] = (160, 120), mode: str = "RGBA", **options: object) -> bytes:
    return encode(noise(size, mode), "PNG", **options)


def exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """An APP1 Exif segment whose IFD1 carries ``thumbnail`` (CIPA DC-008 4.5.8), as
    cameras and phones write it: a whole JPEG, EOI included, inside the main one."""
    # TIFF header (big-endian), an empty IFD0 linking to IFD1, which points at the JPEG.
    ifd1_at = 8 + 2 + 4
    thumb_at = ifd1_at + 2 + 2 * 12 + 4
    tiff = (
        b"MM\x00*"
        + struct.pack(">I", 8)
        + struct.pack(">HI", 0, ifd1_at)
        + struct.pack(">H", 2)
        + struct.pack(">HHII", 0x0201, 4, 1, thumb_at)  # JPEGInterchangeFormat
        + struct.pack(">HHII", 0x0202, 4, 1, len(thumbnail))  # ...Length
        + struct.pack(">I", 0)
        + thumbnail
    )
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload


def jpeg_with_thumbnail(size: tuple[int, int] = (640, 480)) -> bytes:
    main = jpeg(size)
    return main[:2] + exif_with_thumbnail(jpeg((160, 120))) + main[2:]


def chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk with its length and a correct CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` grey pixels, with CRCs right."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def png_zlib_bomb(inflated: int = 64 << 20) -> bytes:
    """A 100x100 grey PNG whose IDAT inflates to ``inflated`` bytes of zeros (64 MiB in a
    file of ~64 KB, deflate's ~1000:1 ceiling), where the header implies 10,100."""
    packer = zlib.compressobj(9)
    piece = bytes(1 << 20)
    idat = b"".join(packer.compress(piece) for _ in range(inflated >> 20)) + packer.flush()
    return png_declaring(100, 100, idat)


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 is rewritten to declare ``width`` x ``height``."""
    data = bytearray(jpeg((16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_interlaced(size: tuple[int, int] = (67, 45), mode: str = "RGB") -> bytes:
    """An Adam7-interlaced PNG of noise (Pillow writes none), filter type 0 throughout."""
    image = noise(size, mode)
    width, height = size
    pixels, step = image.tobytes(), len(mode)
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2))  # fmt: skip
    raw = b""
    for x0, y0, dx, dy in passes:
        for y in range(y0, height, dy):
            row = pixels[y * width * step : (y + 1) * width * step]
            picked = b"".join(row[x * step : (x + 1) * step] for x in range(x0, width, dx))
            if picked:
                raw += b"\x00" + picked
    colour = {"L": 0, "RGB": 2, "RGBA": 6}[mode]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 1)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def png_16bit(size: tuple[int, int] = (64, 48)) -> bytes:
    """A 16-bit greyscale PNG (bit depth 16, colour type 0)."""
    data = random.Random(3).randbytes(size[0] * size[1] * 2)  # noqa: S311
    return encode(Image.frombytes("I;16", size, data), "PNG")


def zip_of(name: str, text: str, *, comment_reach: int = 0) -> bytes:
    """A ZIP archive; ``comment_reach`` sets its end record's comment length, so that the
    comment runs over that many bytes placed after the archive (APPNOTE 4.3.16)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(name, text)
    data = out.getvalue()
    return data[:-2] + struct.pack("<H", comment_reach)


def jpeg_with_zip_in_comment() -> bytes:
    """A JPEG whose last segment before EOI is a comment holding a ZIP; the archive's
    comment covers the EOI, so the file ends where both formats say it does."""
    image = jpeg((160, 120))
    archive = zip_of("payload.html", "<script>alert(1)</script>", comment_reach=2)
    comment = b"\xff\xfe" + struct.pack(">H", 2 + len(archive)) + archive
    return image[:-2] + comment + image[-2:]


def png_with_zip_chunk() -> bytes:
    """A PNG with a private ancillary chunk holding a ZIP, just before IEND; the archive's
    comment covers the chunk's CRC and the IEND chunk."""
    image = png((64, 48), "RGB")
    archive = zip_of("payload.html", "<script>alert(1)</script>", comment_reach=4 + 12)
    return image[:-12] + chunk(b"ziPx", archive) + image[-12:]


# Formats berkas does not take, with an image/jpeg label and a .jpg name in the tests.
DISGUISED = {
    "gif": encode(noise((32, 32), "L").convert("P"), "GIF"),
    "webp": encode(noise((32, 32)), "WEBP"),
    "bmp": encode(noise((32, 32)), "BMP"),
    "tiff": encode(noise((32, 32)), "TIFF"),
    "html": b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="9"/></svg>',
    # The DOS stub every Windows PE starts with (Microsoft PE/COFF spec, "MS-DOS Stub").
    "exe": b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48) + b"PE\0\0",
    "zip": zip_of("ktp.jpg", "not an image"),
}


# --- PDFs -------------------------------------------------------------------------------

_PAGE_OBJECTS = [
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
]


def raw_pdf(catalogue_extra: bytes = b"", extra: tuple[bytes, ...] = ()) -> bytes:
    """A one-page PDF written by hand with a classic xref table: object 1 is the catalogue
    (``catalogue_extra`` added inside it), 2 and 3 the page tree, then ``extra``."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalogue_extra + b" >>",
        *_PAGE_OBJECTS,
        *extra,
    ]
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref_at,
    )
    return out


def pdf_with_misplaced_entries(objects: int, misplaced: int) -> bytes:
    """``raw_pdf`` with ``objects`` small extra objects, the cross-reference entries of the
    last ``misplaced`` of them pointing two bytes past their object."""
    data = raw_pdf(b"", tuple(b"<< /A [1 2 3] >>" for _ in range(objects)))
    table_at = data.index(b"xref\n")
    head, table = data[:table_at], data[table_at:]
    lines = table.split(b"\n")
    # lines: "xref", "0 N", the free entry, then one line per object, then the trailer.
    total = objects + 3
    for index in range(3 + total - misplaced, 3 + total):
        offset = int(lines[index][:10]) + 2
        lines[index] = b"%010d" % offset + lines[index][10:]
    return head + b"\n".join(lines)


def pdf_declaring_entries(entries: int, *, stream: bool) -> bytes:
    """A one-page PDF whose cross-reference declares ``entries`` entries, all but the
    first few free: as a classic table (20 bytes each), or as a compressed stream
    (1.9 million of them fit in 13 KB)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", *_PAGE_OBJECTS]
    out = b"%PDF-1.7\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    if not stream:
        out += b"xref\n0 %d\n0000000000 65535 f \n" % entries
        out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
        out += b"0000000000 00000 f \n" * (entries - 4)
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % entries
        return out + b"startxref\n%d\n%%%%EOF\n" % xref_at
    rows = [struct.pack(">BIH", 0, 0, 65535)]
    rows += [struct.pack(">BIH", 1, offset, 0) for offset in offsets]
    rows += [struct.pack(">BIH", 1, xref_at, 0)]
    table = zlib.compress(b"".join(rows) + bytes(7) * (entries - 5), 9)
    out += (
        b"4 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Filter /FlateDecode "
        b"/Length %d >>\nstream\n%s\nendstream\nendobj\n" % (entries, len(table), table)
    )
    return out + b"startxref\n%d\n%%%%EOF\n" % xref_at


def packed_pdf(catalogue_extra: bytes = b"", extra: tuple[bytes, ...] = ()) -> bytes:
    """The same PDF with every object packed in one compressed object stream (ISO 32000-1
    7.5.7), listed by a cross-reference stream (7.5.8): nothing readable in the raw bytes."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalogue_extra + b" >>",
        *_PAGE_OBJECTS,
        *extra,
    ]
    stream_number, xref_number = len(objects) + 1, len(objects) + 2
    header, body = b"", b""
    for number, text in enumerate(objects, 1):
        header += b"%d %d " % (number, len(body))
        body += text + b"\n"
    packed = zlib.compress(header + body)
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    stream_at = len(out)
    out += (
        b"%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>\n"
        b"stream\n%s\nendstream\nendobj\n"
        % (stream_number, len(objects), len(header), len(packed), packed)
    )
    xref_at = len(out)
    rows = [struct.pack(">BIH", 0, 0, 65535)]
    rows += [struct.pack(">BIH", 2, stream_number, index) for index in range(len(objects))]
    rows += [struct.pack(">BIH", 1, stream_at, 0), struct.pack(">BIH", 1, xref_at, 0)]
    table = b"".join(rows)
    out += (
        b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\n"
        b"stream\n%s\nendstream\nendobj\n" % (xref_number, xref_number + 1, len(table), table)
    )
    return out + b"startxref\n%d\n%%%%EOF\n" % xref_at


def pdf_with_zip_inside() -> bytes:
    """A hand-written PDF with a ZIP in an unreferenced stream whose comment runs over the
    rest of the file (endstream ... %%EOF): a PDF and an archive at once."""
    archive = zip_of("payload.html", "<script>alert(1)</script>")
    stream = b"<< /Length %d >>\nstream\n" % len(archive)
    probe = raw_pdf(b"", (stream + archive + b"\nendstream",))
    rest = len(probe) - (probe.index(archive) + len(archive))
    patched = archive[:-2] + struct.pack("<H", rest)
    return raw_pdf(b"", (stream + patched + b"\nendstream",))


def plain_pdf(pages: int = 2) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_with_javascript(*, on_page: bool = False) -> bytes:
    """JavaScript run when the document opens (pypdf puts it in the /Names /JavaScript
    tree), or when its page opens (the page's /AA /O, ISO 32000-1 12.6.3)."""
    writer = PdfWriter()
    page = writer.add_blank_page(width=595, height=842)
    script = JavaScript("app.alert('berkas');")
    if on_page:
        page.add_action(PageTrigger.OPEN, script)
    else:
        writer.add_open_action(script)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_with_attachment() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.add_attachment("invoice.exe", b"MZ" + bytes(62))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def pdf_with_open_action(action: DictionaryObject) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(action)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def launch_action() -> DictionaryObject:
    return DictionaryObject(
        {
            NameObject("/S"): NameObject("/Launch"),
            NameObject("/F"): TextStringObject("cmd.exe"),
        }
    )


# Hand-written hostile constructs, each the one its name says, for raw_pdf / packed_pdf.
JS_OPEN_ACTION = b"/OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >>"
# #61 is "a" (ISO 32000-1 7.3.5): a reader sees /JavaScript and /JS.
JS_HEX_ESCAPED = b"/OpenAction << /S /J#61vaScript /#4AS (app.alert\\(1\\)) >>"
LAUNCH_OPEN_ACTION = b"/OpenAction << /S /Launch /F (cmd.exe) >>"
# The catalogue's additional actions (12.6.3, Table 197): a script, as object 4, run when
# the document is about to close.
CLOSE_AA = b"/AA << /WC << /S /JavaScript /JS 4 0 R >> >>"
SCRIPT_OBJECT = b"(app.alert\\(1\\))"
SUBMIT_OPEN_ACTION = b"/OpenAction << /S /SubmitForm /F << /FS /URL /F (https://x.test/) >> >>"
XFA_FORM = b"/AcroForm << /Fields [] /XFA 4 0 R >>"
EMBEDDED_FILES = b"/Names << /EmbeddedFiles << /Names [(a.exe) 4 0 R] >> >>"
FILESPEC = b"<< /Type /Filespec /F (a.exe) /EF << /F 5 0 R >> >>"
EMBEDDED_STREAM = b"<< /Type /EmbeddedFile /Length 2 >>\nstream\nMZ\nendstream"
# Harmless: opening at page 1, and a link to a website.
GOTO_OPEN_ACTION = b"/OpenAction [3 0 R /Fit]"
URI_OPEN_ACTION = b"/OpenAction << /S /URI /URI (https://example.com/) >>"
