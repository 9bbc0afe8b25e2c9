"""One reader per grammar: over the image corpus, the segments and chunks jpeg.py and png.py
report are exactly the ranges stripping keeps and drops, and their end is the one
inspection measures trailing data from. A second parser anywhere would show up here."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from berkas.core import jpeg, png
from berkas.core.content import ImageLimits, Kind, inspect
from berkas.core.errors import UnsupportedContent
from berkas.core.metadata import find_metadata, plan_strip, write_stripped
from tests.support import corpus


def _segment(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + struct.pack(">H", 2 + len(payload)) + payload


def _tagged_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[1] = "S"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = corpus.encode(
        corpus.noise((96, 64)), "JPEG", exif=exif.tobytes(), comment=b"home", icc_profile=icc
    )
    return (
        image[:2]
        + _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>")
        + _segment(0xED, b"Photoshop 3.0\x008BIM")
        + _segment(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")
        + b"\xff\xff"  # fill before the next marker
        + image[2:]
    )


def _tagged_png() -> bytes:
    image = corpus.png((48, 32))
    return (
        image[:33]
        + corpus.chunk(b"tEXt", b"Author\x00Budi")
        + corpus.chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00")
        + corpus.chunk(b"tIME", b"\x07\xea\x01\x02\x03\x04\x05")
        + corpus.chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x/>")
        + corpus.chunk(b"prVt", b"kept")
        + image[33:]
    )


JPEGS: list[Callable[[], bytes]] = [
    lambda: corpus.jpeg((96, 64)),
    lambda: corpus.encode(corpus.noise((96, 64)), "JPEG", progressive=True),
    lambda: corpus.encode(corpus.noise((96, 64)), "JPEG", restart_marker_blocks=1),
    lambda: corpus.jpeg((96, 64), "L"),
    lambda: corpus.jpeg((96, 64), "CMYK"),
    lambda: corpus.jpeg_with_thumbnail((96, 64)),
    _tagged_jpeg,
]
PNGS: list[Callable[[], bytes]] = [
    lambda: corpus.png((64, 48)),
    lambda: corpus.png((64, 48), "P"),
    lambda: corpus.png_interlaced((67, 45), "RGB"),
    lambda: corpus.png_16bit((32, 24)),
    _tagged_png,
]
JPEG_IDS = ["baseline", "progressive", "restarts", "grey", "cmyk", "thumbnail", "tagged"]
PNG_IDS = ["rgba", "palette", "interlaced", "16-bit", "tagged"]

# The policy in metadata.py's docstring, written out independently: APPn other than JFIF,
# ICC and Adobe go, and COM; in a PNG, eXIf and the text and time chunks.
_KEPT_APP = {0xE0: b"JFIF\x00", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}
_DROPPED_CHUNKS = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}


def _jpeg_kept(data: bytes, segment: jpeg.Segment) -> bool:
    if segment.code == 0xFE:
        return False
    if 0xE0 <= segment.code <= 0xEF:
        ident = _KEPT_APP.get(segment.code)
        return ident is not None and data[segment.body :].startswith(ident)
    return True


def _stripped(tmp_path: Path, data: bytes, kind: Kind) -> bytes:
    src = tmp_path / "src"
    src.write_bytes(data)
    out = io.BytesIO()
    planned = plan_strip(src, kind)
    write_stripped(planned, out)
    return out.getvalue() if planned.stripped.changed else data


def _refusal(tmp_path: Path, data: bytes) -> UnsupportedContent:
    path = tmp_path / "upload"
    path.write_bytes(data)
    limits = ImageLimits()
    with pytest.raises(UnsupportedContent) as caught:
        inspect(path, head=data[:16], size=len(data), allowed=set(Kind), label="T", limits=limits)
    return caught.value


def _end(data: bytes, kind: Kind) -> int:
    if kind is Kind.JPEG:
        return jpeg.image_end(io.BytesIO(data), len(data))
    return png.check_image_data(io.BytesIO(data), len(data))


@pytest.mark.parametrize("make", JPEGS, ids=JPEG_IDS)
def test_jpeg_stripping_keeps_and_drops_exactly_the_readers_segments(
    tmp_path: Path, make: Callable[[], bytes]
) -> None:
    data = make()
    segments = list(jpeg.segments(io.BytesIO(data), len(data)))
    sos = next(s for s in segments if s.code == jpeg.SOS)
    before = segments[: segments.index(sos)]

    expected = b"".join(data[s.start : s.end] for s in before if _jpeg_kept(data, s))

    assert _stripped(tmp_path, data, Kind.JPEG) == expected + data[sos.start :]
    assert bool(find_metadata(tmp_path / "src", Kind.JPEG)) == (len(expected) < sos.start)


@pytest.mark.parametrize("make", PNGS, ids=PNG_IDS)
def test_png_stripping_keeps_and_drops_exactly_the_readers_chunks(
    tmp_path: Path, make: Callable[[], bytes]
) -> None:
    data = make() + b"\x00" * 3  # padding after IEND, kept as it was
    chunks = list(png.chunks(io.BytesIO(data), len(data), check_crc=True))

    kept = b"".join(data[c.start : c.end] for c in chunks if c.type not in _DROPPED_CHUNKS)

    stripped = _stripped(tmp_path, data, Kind.PNG)
    assert stripped == data[:8] + kept + data[chunks[-1].end :]


@pytest.mark.parametrize(
    ("make", "kind"),
    [*((m, Kind.JPEG) for m in JPEGS), *((m, Kind.PNG) for m in PNGS)],
    ids=[*JPEG_IDS, *(f"png-{i}" for i in PNG_IDS)],
)
def test_inspection_measures_trailing_data_from_the_readers_end(
    tmp_path: Path, make: Callable[[], bytes], kind: Kind
) -> None:
    data = make() + b"\x00" * 5  # padding: the reader's end is before it
    end = _end(data, kind)

    refused = _refusal(tmp_path, data + b"<html>" + b"\x00" * 2000)

    assert refused.code == "trailing_data"
    assert f"{len(data) + 2006 - end:,} bytes after the end of its image" in refused.message


def test_a_png_chunk_type_with_a_digit_is_refused_by_inspection_and_stripping_alike(
    tmp_path: Path,
) -> None:
    # Pillow accepts any word character in a chunk type; PNG 3rd ed. 5.4 allows letters
    # only. Inspection used to accept what stripping refused (a parser differential);
    # both now read chunks through png.py.
    image = corpus.png((16, 16))
    data = image[:33] + corpus.chunk(b"t3Xt", b"x") + image[33:]
    path = tmp_path / "odd.png"
    path.write_bytes(data)

    with pytest.raises(UnsupportedContent) as inspected:
        inspect(
            path,
            head=data[:16],
            size=len(data),
            allowed={Kind.PNG},
            label="T",
            limits=ImageLimits(),
        )
    with pytest.raises(UnsupportedContent) as stripped:
        plan_strip(path, Kind.PNG)

    assert inspected.value.code == stripped.value.code == "image_corrupt"
