"""What may follow the end of a JPEG, PNG or PDF: trailing data, and a ZIP archive whose
end record sits in a file's tail (one file that is also an archive). Where an image ends
is its format's one reader's to say (jpeg.py, png.py).

A second file rides along in the bytes a viewer ignores. ZIP readers find an archive by
its end record, searched for from the file's end (APPNOTE.TXT 4.3.16), so a ZIP or JAR
appended to an image is still a valid archive while the image still displays (GIFAR,
CVE-2008-5343; A. Albertini, "Abusing file formats", PoC||GTFO 0x07); HTML or script after
an image's end has been rendered as a page by content-sniffing browsers.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from berkas.core.codes import Code
from berkas.core.errors import UnsupportedContent

# --- what may follow the end --------------------------------------------------------------

# By the formats, nothing (T.81 B.2.1 ends a JPEG with EOI; PNG 3rd ed. 11.2.5, IEND "marks
# the end of the PNG datastream"). Some camera firmware and scanner drivers still pad a
# finished file with 0x00 or 0xFF bytes (to an even length, a buffer or a 512-byte sector)
# and decoders ignore them; padding carries nothing, so up to 1 KiB of it is accepted.
# Phone "motion photos" (an MP4 after the JPEG) and MPO multi-picture files (CIPA DC-007)
# are refused too: a reviewer sees the first picture only, and the stored bytes must be
# what they review.
PADDING_MAX = 1024
_PADDING = b"\x00\xff"
# After a PDF's last %%EOF (ISO 32000-1 7.5.5): an end-of-line, and the whitespace and NUL
# padding of 7.2.2 some writers add. The %%EOF itself must lie in the last 1 KiB.
_PDF_PADDING = b"\x00\t\n\x0c\r \xff"


def check_image_tail(fh: BinaryIO, end: int, size: int, label: str, end_mark: str) -> None:
    """Refuse (``trailing_data``) what follows offset ``end`` unless it is padding."""
    extra = size - end
    if extra <= 0:
        return
    if extra <= PADDING_MAX:
        fh.seek(end)
        if not fh.read(extra).strip(_PADDING):
            return
    raise UnsupportedContent(
        f"file is a {label} with {extra:,} bytes after the end of its image ({end_mark}), "
        f"where another file can hide; at most {PADDING_MAX:,} bytes of zero or 0xFF "
        "padding may follow. Phones add such data for motion photos and multi-picture "
        f"files: save or export a plain {label} and upload that.",
        code=Code.TRAILING_DATA,
    )


def check_pdf_tail(window: bytes) -> None:
    """Refuse (``trailing_data``) a PDF whose last bytes, ``window``, have anything but
    whitespace after the last %%EOF (which the caller has found there)."""
    after = window[window.rindex(b"%%EOF") + 5 :]
    if after.strip(_PDF_PADDING):
        raise UnsupportedContent(
            f"file is a PDF with {len(after):,} bytes after its last %%EOF marker, where "
            "another file can hide; save or export it again and upload the new file.",
            code=Code.TRAILING_DATA,
        )


# --- an archive inside ------------------------------------------------------------------

# ZIP's end of central directory record (APPNOTE.TXT 4.3.16): signature, then disk numbers,
# entry counts, the directory's size and offset, and a comment of up to 64 KiB that runs to
# the archive's end. A reader searches the last 22 + 65,535 bytes for it.
_EOCD = b"PK\x05\x06"
_CENTRAL = b"PK\x01\x02"  # a central directory file header (4.3.12)
_ZIP64_LOCATOR = b"PK\x06\x07"  # 4.3.15, just before the end record of a ZIP64 archive
_EOCD_SIZE = 22
_ZIP_TAIL = _EOCD_SIZE + 0xFFFF


def check_no_archive(fh: BinaryIO, size: int, label: str) -> None:
    """Refuse (``embedded_archive``) a file whose tail holds a ZIP end record that leads to
    a central directory: the file opens as an archive as well as a ``label``.

    This finds what the trailing-data check cannot: an archive tucked inside the format
    itself (a JPEG comment segment, a private PNG chunk, a PDF stream) so that its end
    record's comment runs to the file's real end. A random match needs eight bytes at one
    fixed distance; no honest file has one.
    """
    start = max(0, size - _ZIP_TAIL)
    fh.seek(start)
    tail = fh.read(size - start)
    at = tail.rfind(_EOCD)
    while at >= 0:
        if _is_end_record(fh, tail, start, at):
            raise UnsupportedContent(
                f"file is a {label} that is also a ZIP archive (its last bytes are an "
                "archive's directory): a second file rides along. Save or export the "
                f"{label} again and upload the new file.",
                code=Code.EMBEDDED_ARCHIVE,
            )
        at = tail.rfind(_EOCD, 0, at)


def _is_end_record(fh: BinaryIO, tail: bytes, start: int, at: int) -> bool:
    record = tail[at : at + _EOCD_SIZE]
    if len(record) < _EOCD_SIZE:
        return False
    entries, directory_size, _, comment = struct.unpack("<HIIH", record[10:])
    if at + _EOCD_SIZE + comment > len(tail):
        return False
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        return tail[max(0, at - 20) : at].startswith(_ZIP64_LOCATOR)
    if entries == 0 or directory_size > start + at:
        return False
    # The central directory ends where the end record starts (4.3.6).
    fh.seek(start + at - directory_size)
    return fh.read(4) == _CENTRAL
