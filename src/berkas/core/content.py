"""Content inspection (docs/design.md 2.4): what a file's bytes are, and whether they really parse.

The type comes from magic numbers and a real decode, never from the filename or the
multipart part's Content-Type, both of which the sender chooses freely.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image
from pypdf import PdfReader, apply_configuration
from pypdf.errors import PdfReadWarning

from berkas.core import file_end, jpeg, pdf_active, png
from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest, UnsupportedContent
from berkas.core.pdf_active import Finding

# How many leading bytes a caller must keep for ``sniff``: the longest magic number is
# PNG's 8-byte signature; the rest is headroom for a future kind (WebP needs 12).
SNIFF_BYTES = 16

# ISO 32000-1 7.5.5 puts %%EOF on the last line; Acrobat accepts it anywhere in the last
# 1024 bytes (PDF Reference 1.7, Appendix H, implementation note 18), and so do we.
_PDF_EOF_WINDOW = 1024


class Kind(enum.Enum):
    """A content type berkas stores, with its MIME type and storage extension."""

    JPEG = ("image/jpeg", "jpg", "JPEG")
    PNG = ("image/png", "png", "PNG")
    PDF = ("application/pdf", "pdf", "PDF")

    def __init__(self, mime: str, extension: str, label: str) -> None:
        self.mime = mime
        self.extension = extension
        self.label = label


_MAGIC: tuple[tuple[bytes, Kind], ...] = (
    # JPEG: SOI (FF D8) followed by the first marker's FF (ITU-T T.81 B.1.1.3).
    (b"\xff\xd8\xff", Kind.JPEG),
    # PNG: the fixed 8-byte signature (PNG spec, 3rd ed., section 5.2).
    (b"\x89PNG\r\n\x1a\n", Kind.PNG),
    # PDF: "%PDF-" at offset 0. Readers accept the header anywhere in the first 1024
    # bytes (PDF Reference 1.7, Appendix H, implementation note 13), which is what makes
    # HTML/PDF and JPEG/PDF polyglots possible: one file that a browser renders as a page
    # and a PDF reader as a document. ISO 32000-1 7.5.2 puts the header on the first
    # line, so insisting on offset 0 refuses polyglots and no honest producer.
    (b"%PDF-", Kind.PDF),
)

_PIL_FORMAT = {Kind.JPEG: "JPEG", Kind.PNG: "PNG"}


@dataclass(frozen=True, slots=True)
class Refused:
    """A format people send that berkas does not store, named so the refusal can say
    what the file is and how to get an accepted one."""

    name: str
    how: str


# ISO/IEC 14496-12 4.3 (ISO base media file format): a file opens with a box of type
# "ftyp" at offset 4 whose major brand follows at offset 8. HEIF and HEIC (ISO/IEC
# 23008-12) register the brands below; "avif" is AVIF's (AV1 Image File Format 1.1).
_HEIF_BRANDS = {
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"hevc": "HEIC",
    b"hevm": "HEIC",
    b"hevs": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
}
_IPHONE = (
    "on an iPhone set Settings > Camera > Formats > Most Compatible, or export the photo "
    "as JPEG (Share > Options > Most Compatible)"
)
_REFUSED = {
    # The iPhone camera's default format since iOS 11.
    "HEIC": Refused("a HEIC image (an iPhone photo)", _IPHONE),
    "HEIF": Refused("a HEIF image (an iPhone or Android photo)", _IPHONE),
    "AVIF": Refused("an AVIF image", "export or convert it to JPEG"),
    "WEBP": Refused(
        "a WebP image (often saved from a web page or WhatsApp)",
        "convert it to JPEG or PNG (any image editor: Save as / Export as JPEG)",
    ),
    "GIF": Refused("a GIF image", "convert it to PNG or JPEG (any image editor: Export as PNG)"),
}


def recognise_refused(head: bytes) -> Refused | None:
    """A well-known format berkas does not accept (HEIC/HEIF/AVIF, WebP, GIF), by its
    magic number, or None."""
    # GIF: "GIF87a" or "GIF89a" (GIF89a specification, section 17, Header).
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _REFUSED["GIF"]
    # WebP: a RIFF container whose form type is "WEBP" (RFC 9649 section 2.5).
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _REFUSED["WEBP"]
    if head[4:8] == b"ftyp":
        brand = _HEIF_BRANDS.get(head[8:12])
        if brand is not None:
            return _REFUSED[brand]
    return None


# A document's bytes as the checks read them: a file (the spool on disk), or the bytes
# themselves (a small upload the spool kept in memory, services/spool.py).
Source = Path | bytes


def open_source(source: Source) -> BinaryIO:
    """``source`` opened for reading from its start (a seekable binary reader)."""
    if isinstance(source, Path):
        return source.open("rb")
    return io.BytesIO(source)  # shares the bytes until written to: no copy


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Bounds on an image's declared size, checked before any pixel is decoded."""

    max_pixels: int = 40_000_000
    max_side: int = 12_000
    min_side: int = 1

    def __post_init__(self) -> None:
        if self.min_side < 1 or self.max_side < self.min_side or self.max_pixels < 1:
            raise ValueError(
                "image limits need 1 <= min_side <= max_side and max_pixels >= 1, got "
                f"min_side={self.min_side}, max_side={self.max_side}, "
                f"max_pixels={self.max_pixels}"
            )


@dataclass(frozen=True, slots=True)
class ContentInfo:
    """What ``inspect`` found: the kind, and pixel size (images) or page count (PDF)."""

    kind: Kind
    width: int | None
    height: int | None
    pages: int | None


def sniff(head: bytes) -> Kind | None:
    """Return the kind whose magic number starts ``head``, or None."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def inspect(
    path: Source,
    *,
    head: bytes,
    size: int,
    allowed: Collection[Kind],
    label: str,
    limits: ImageLimits,
) -> ContentInfo:
    """Check that the spooled file at ``path`` (or the bytes themselves, for a small
    upload the spool kept in memory) is a kind ``allowed`` and fully parses.

    ``head`` is the file's first bytes (at least ``SNIFF_BYTES`` unless shorter), ``size``
    its length, ``label`` the requirement's name for messages (e.g. ``DOCUMENT/KTP``).
    Raises ``InvalidRequest`` (``empty_file``) or ``UnsupportedContent`` with a code per
    cause: ``unsupported_type``, ``type_not_allowed``, ``image_truncated``,
    ``image_corrupt``, ``image_too_large``, ``image_too_small``, ``trailing_data``,
    ``embedded_archive``, ``pdf_corrupt``, ``pdf_encrypted``, ``pdf_too_complex``,
    ``pdf_active_content``, ``pdf_embedded_file``. The file's name plays no part
    (docs/design.md 2.4).
    """
    accepts = f"{label} accepts {_labels(allowed)}"
    if size == 0:
        raise InvalidRequest(f"file is empty; {accepts}.", code=Code.EMPTY_FILE)
    kind = sniff(head)
    known = recognise_refused(head) if kind is None else None
    if known is not None:
        raise UnsupportedContent(
            f"file is {known.name}, which {label} does not accept: send "
            f"{_any_kind(allowed)}; {known.how}.",
            code=Code.UNSUPPORTED_TYPE,
        )
    if kind is None:
        raise UnsupportedContent(
            f"file is not a {_any_kind()}; {accepts}.",
            code=Code.UNSUPPORTED_TYPE,
        )
    if kind not in allowed:
        raise UnsupportedContent(
            f"file is a {kind.label}, which {label} does not accept; {accepts}.",
            code=Code.TYPE_NOT_ALLOWED,
        )
    if kind is Kind.PDF:
        return _inspect_pdf(path, size, label)
    return _inspect_image(path, kind, limits, size)


def _labels(kinds: Collection[Kind]) -> str:
    # A list keeps the caller's order (a catalogue lists PDF first for KTP, as DOKU
    # does); a set has none worth keeping, so it follows the enum's.
    ordered = list(kinds) if isinstance(kinds, Sequence) else [k for k in Kind if k in kinds]
    return ", ".join(k.label for k in ordered)


def _any_kind(kinds: Collection[Kind] = tuple(Kind)) -> str:
    names = [k.label for k in Kind if k in kinds]
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]


def _inspect_image(path: Source, kind: Kind, limits: ImageLimits, size: int) -> ContentInfo:
    fmt = _PIL_FORMAT[kind]
    # Pillow warns (DecompressionBombWarning) above Image.MAX_IMAGE_PIXELS and raises
    # only above twice that; docs/design.md 2.4 wants bombs refused, never merely warned about.
    # Image.MAX_IMAGE_PIXELS is process-global, so we neither rely on nor change it; the
    # check of the declared size below is the real guard. catch_warnings() is not
    # thread-safe (it swaps the global filter list), but the worst a race can do is leave
    # this one filter behind, turning that warning into an error elsewhere too: harmless.
    with warnings.catch_warnings(), open_source(path) as fh:
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        width, height = _declared_size(fh, fmt, kind)
        _check_dimensions(width, height, kind, limits)
        if kind is Kind.PNG:
            # Image.load() does not check chunk CRCs; verify() walks every chunk and does
            # (a flipped bit inside IDAT can still inflate to plausible pixels).
            _decode(fh, fmt, kind, verify=True)
        else:
            _decode(fh, fmt, kind, verify=False)
        # Then where the image ends; a PNG's image data is inflated on the way, as a
        # stream: the same checks a full load makes, without a pixel buffer (a 26 MP RGB
        # PNG would need ~78 MB).
        end = _image_end(fh, kind, size)
        file_end.check_image_tail(fh, end, size, kind.label, _END_MARK[kind])
        file_end.check_no_archive(fh, size, kind.label)
    return ContentInfo(kind=kind, width=width, height=height, pages=None)


def _declared_size(fh: BinaryIO, fmt: str, kind: Kind) -> tuple[int, int]:
    # Image.open reads the header only; no pixel buffer exists yet.
    try:
        with Image.open(fh, formats=[fmt]) as im:
            return im.size
    except MemoryError:
        raise
    except Exception as exc:
        # Any parser failure means "not a usable image"; Pillow raises OSError, SyntaxError,
        # ValueError, struct.error, EOFError... and no caller should see which.
        raise _image_failure(kind, exc) from exc


def _check_dimensions(width: int, height: int, kind: Kind, limits: ImageLimits) -> None:
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise UnsupportedContent(
            f"file is a {width}x{height} {kind.label}; images may be at most "
            f"{limits.max_side} pixels on a side and {limits.max_pixels:,} pixels in all.",
            code=Code.IMAGE_TOO_LARGE,
        )
    if width < limits.min_side or height < limits.min_side:
        raise UnsupportedContent(
            f"file is a {width}x{height} {kind.label}; images must be at least "
            f"{limits.min_side} pixels on a side.",
            code=Code.IMAGE_TOO_SMALL,
        )


def _decode(fh: BinaryIO, fmt: str, kind: Kind, *, verify: bool) -> None:
    # Every pixel is decoded: Image.verify() checks PNG chunk CRCs but reads no JPEG
    # entropy-coded data at all, so only load() finds a JPEG cut short. This relies on
    # ImageFile.LOAD_TRUNCATED_IMAGES being False (Pillow's default; a test pins it), else
    # Pillow pads a cut image with grey and calls it loaded.
    fh.seek(0)
    try:
        with Image.open(fh, formats=[fmt]) as im:
            if verify:
                im.verify()
                return
            if kind is Kind.JPEG:
                # libjpeg decodes at 1/8 scale in greyscale: every Huffman-coded block is
                # still read (so truncation and bad data are found) at 1/64 of the memory.
                im.draft("L", (1, 1))
            im.load()
    except MemoryError:
        raise
    except Exception as exc:
        # See _declared_size: parser internals never leave this module.
        raise _image_failure(kind, exc) from exc


_END_MARK = {Kind.JPEG: "its EOI marker", Kind.PNG: "its IEND chunk"}


def _image_end(fh: BinaryIO, kind: Kind, size: int) -> int:
    """Where the image in ``fh`` ends, found by its format's one reader (jpeg.py, png.py);
    a PNG's image data is inflated on the way and checked as a stream."""
    try:
        if kind is Kind.PNG:
            return png.check_image_data(fh, size)
        return jpeg.image_end(fh, size)
    except (EOFError, ValueError) as exc:  # the readers' Truncated and Corrupt
        raise _image_failure(kind, exc) from exc


def _image_failure(kind: Kind, exc: Exception) -> UnsupportedContent:
    # Pillow's wording for data that ends early: "image file is truncated (n bytes not
    # processed)" from ImageFile.load, "Truncated File Read" from ImageFile._safe_read;
    # EOFError when a header ends mid-field.
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return UnsupportedContent(
            f"file is a {kind.label} that declares too many pixels to decode safely (a "
            "possible decompression bomb); resize it and upload again.",
            code=Code.IMAGE_TOO_LARGE,
        )
    text = str(exc).lower()
    if isinstance(exc, EOFError) or "truncated" in text:
        return UnsupportedContent(
            f"file is a {kind.label} that ends before its image data does (truncated, "
            "perhaps an interrupted transfer); upload the complete file.",
            code=Code.IMAGE_TRUNCATED,
        )
    return UnsupportedContent(
        f"file starts like a {kind.label} but its image data does not decode (corrupt); "
        "export or scan it again and upload the new file.",
        code=Code.IMAGE_CORRUPT,
    )


def _inspect_pdf(path: Source, size: int, label: str) -> ContentInfo:
    # A PDF is parsed for structure only (xref, trailer, page tree, every listed object's
    # dictionary), never rendered: rendering is where the work and the attack surface
    # are, and a reviewer's viewer does that. The size was already capped while streaming.
    with open_source(path) as fh:
        fh.seek(max(0, size - _PDF_EOF_WINDOW))
        window = fh.read()
        if b"%%EOF" not in window:
            raise UnsupportedContent(
                f"file is a PDF with no %%EOF marker in its last {_PDF_EOF_WINDOW} bytes "
                "(truncated or damaged); upload the complete file.",
                code=Code.PDF_CORRUPT,
            )
        file_end.check_pdf_tail(window)
        file_end.check_no_archive(fh, size, Kind.PDF.label)
        fh.seek(0, os.SEEK_SET)
        pages, found = _read_pdf(fh, size, window)
    if pages < 1:
        raise UnsupportedContent(
            "file is a PDF with no pages; upload the document itself.", code=Code.PDF_CORRUPT
        )
    if found:
        _refuse_active(found, label)
    return ContentInfo(kind=Kind.PDF, width=None, height=None, pages=pages)


# The most objects a PDF may list. A scanned KTP has a dozen, a 300-page deed a few
# thousand; each costs a parse, so the cap bounds the work of one upload at a few
# seconds. It is checked in the raw bytes (classic tables) and by pypdf (cross-reference
# streams) before pypdf builds the table, and again on the table pypdf built.
_PDF_MAX_OBJECTS = 50_000
# pypdf decodes only object and cross-reference streams here (never page content or
# images). Its default cap is 75 MB of output per stream; an object stream holding more
# than 16 MB of dictionaries would be far past _PDF_MAX_OBJECTS, so nothing honest needs
# more, and a zlib bomb stops there (pypdf.Configuration, since pypdf 6.18).
_PDF_DECODE_CAP = 16_000_000


def _pdf_decode_caps() -> contextlib.AbstractContextManager[object]:
    # A context variable: the caps hold for this thread's parse only.
    return apply_configuration(
        array_based_stream_maximum_output_length=_PDF_DECODE_CAP,
        lzw_maximum_output_length=_PDF_DECODE_CAP,
        run_length_maximum_output_length=_PDF_DECODE_CAP,
        zlib_maximum_output_length=_PDF_DECODE_CAP,
        brotli_maximum_output_length=_PDF_DECODE_CAP,
    )


def _read_pdf(fh: BinaryIO, size: int, window: bytes) -> tuple[int, frozenset[Finding]]:
    """The page count and the active content of the PDF in ``fh`` (``window``: its end)."""
    try:
        # pypdf reports repairs it made through logging (fine) and deprecations through
        # warnings; a PdfReadWarning, should one be raised, means the file is damaged.
        with warnings.catch_warnings(), _pdf_decode_caps():
            warnings.simplefilter("error", PdfReadWarning)
            entries = pdf_active.declared_entries(fh, size, window)
            if entries > _PDF_MAX_OBJECTS:
                raise pdf_active.TooComplex(
                    f"with {entries:,} cross-reference entries, more than the "
                    f"{_PDF_MAX_OBJECTS:,} objects berkas inspects"
                )
            fh.seek(0)
            reader = PdfReader(fh, strict=True, xref_stream_maximum_entries=_PDF_MAX_OBJECTS)
            if reader.is_encrypted:
                # Refused even with an empty user password: a reviewer may still be asked
                # for one, and nothing past the header could be inspected here.
                raise UnsupportedContent(
                    "file is an encrypted PDF; remove the password or encryption and upload again.",
                    code=Code.PDF_ENCRYPTED,
                )
            found = pdf_active.findings(reader, max_objects=_PDF_MAX_OBJECTS)
            return len(reader.pages), found
    except (MemoryError, UnsupportedContent):
        raise
    except pdf_active.DamagedCrossReference as exc:
        raise UnsupportedContent(
            f"file is a PDF whose cross-reference table is damaged ({exc.misplaced:,} "
            "entries point away from their object); save or export it again and upload "
            "the new file.",
            code=Code.PDF_CORRUPT,
        ) from exc
    except pdf_active.TooComplex as exc:
        raise UnsupportedContent(
            f'file is a PDF {exc.what}; save it again with "reduce file size" or split it, '
            "and upload the new file.",
            code=Code.PDF_TOO_COMPLEX,
        ) from exc
    except Exception as exc:
        # Any parser failure (PdfReadError, LimitReachedError, ValueError, KeyError,
        # RecursionError on a looping page tree...) means a reviewer could not rely on the
        # file either.
        raise UnsupportedContent(
            "file is a PDF whose structure does not parse (corrupt or damaged); save or "
            "export it again and upload the new file.",
            code=Code.PDF_CORRUPT,
        ) from exc


def _refuse_active(found: frozenset[Finding], label: str) -> None:
    # A document to review is text and pictures; anything that runs, calls out or hides a
    # second file is refused rather than stripped, since the stored bytes are exactly the
    # bytes sent (their sha256 is part of the answer).
    named = ", ".join(finding.words for finding in Finding if finding in found)
    message = (
        f"file is a PDF carrying {named}; {label} must be a plain document (text and "
        'pictures only): print it to a new PDF ("Save as PDF", "Microsoft Print to PDF") '
        "or scan it, and upload that."
    )
    if all(finding.is_file for finding in found):
        raise UnsupportedContent(message, code=Code.PDF_EMBEDDED_FILE)
    raise UnsupportedContent(message, code=Code.PDF_ACTIVE_CONTENT)
