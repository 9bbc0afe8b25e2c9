"""The JPEG segment reader: real files walk from SOI to EOI, hostile ones are refused."""

from __future__ import annotations

import io
import itertools
import struct
from pathlib import Path

import pytest

from berkas.core import jpeg
from berkas.core.jpeg import Segment
from tests.support import corpus


def _segments(data: bytes) -> list[Segment]:
    return list(jpeg.segments(io.BytesIO(data), len(data)))


def _codes(data: bytes) -> list[int]:
    return [s.code for s in _segments(data)]


def _com(payload: bytes) -> bytes:
    return b"\xff\xfe" + struct.pack(">H", 2 + len(payload)) + payload


def _after_soi(image: bytes, *inserted: bytes) -> bytes:
    return image[:2] + b"".join(inserted) + image[2:]


@pytest.mark.parametrize(
    "options",
    [{}, {"progressive": True}, {"restart_marker_blocks": 2}],
    ids=["baseline", "progressive", "restart-markers"],
)
def test_a_real_jpeg_walks_from_soi_to_eoi_and_ends_at_its_last_byte(
    options: dict[str, object],
) -> None:
    data = corpus.encode(corpus.noise((160, 120)), "JPEG", quality=85, **options)

    segments = _segments(data)

    assert segments[0] == Segment(jpeg.SOI, 0, 2, 2)
    assert segments[-1] == Segment(jpeg.EOI, len(data) - 2, len(data), len(data))
    first_scan = next(i for i, s in enumerate(segments) if s.code == jpeg.SOS)
    # Before the first scan the segments tile the file: each starts where the last ended.
    assert all(a.end == b.start for a, b in itertools.pairwise(segments[: first_scan + 1]))
    # RSTn inside the entropy-coded data are not segments: they never end a scan.
    assert not {s.code for s in segments} & set(range(0xD0, 0xD8))
    for seg in segments[1:-1]:
        (length,) = struct.unpack(">H", data[seg.body - 2 : seg.body])
        assert (data[seg.start], data[seg.start + 1]) == (0xFF, seg.code)
        assert seg.end - seg.body == length - 2
    assert jpeg.image_end(io.BytesIO(data), len(data)) == len(data)


def test_a_progressive_jpeg_has_several_scans_each_skipped_to_its_marker() -> None:
    data = corpus.jpeg((160, 120), progressive=True)

    scans = [s for s in _segments(data) if s.code == jpeg.SOS]

    assert len(scans) > 1
    assert all(data.find(b"\xff\xda", s.start) == s.start for s in scans)


def test_an_exif_thumbnail_inside_app1_does_not_end_the_main_image() -> None:
    data = corpus.jpeg_with_thumbnail((160, 120))
    first_eoi = data.index(b"\xff\xd9")
    assert first_eoi + 2 < len(data)  # the thumbnail's own EOI

    segments = _segments(data)

    app1 = next(s for s in segments if s.code == 0xE1)
    assert app1.body < first_eoi < app1.end  # skipped by its length, never walked
    assert [s.code for s in segments].count(jpeg.EOI) == 1
    assert jpeg.image_end(io.BytesIO(data), len(data)) == len(data)


def test_fill_bytes_before_a_marker_belong_to_its_segment() -> None:
    image = corpus.jpeg((32, 24))
    comment = b"\xff\xff\xff" + _com(b"note")

    segments = _segments(_after_soi(image, comment))

    assert segments[1] == Segment(0xFE, 2, 2 + 3 + 4, 2 + 3 + 4 + 4)


def test_fill_bytes_before_eoi_are_skipped() -> None:
    image = corpus.jpeg((32, 24))
    data = image[:-2] + b"\xff\xff\xff\xff" + image[-2:]

    assert jpeg.image_end(io.BytesIO(data), len(data)) == len(data)


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 7, 64, 1000])
def test_markers_split_across_read_pieces_are_found_all_the_same(
    monkeypatch: pytest.MonkeyPatch, piece: int
) -> None:
    # Small pieces put every boundary somewhere: inside a length field, between a fill
    # FF and its code, between the FF ending a scan and the marker's code.
    data = _after_soi(corpus.jpeg_with_thumbnail((64, 48)), b"\xff\xff" + _com(b"x" * 9))
    data = data[:-2] + b"\xff\xff\xff" + data[-2:]
    whole = _segments(data)

    monkeypatch.setattr(jpeg, "_PIECE", piece)

    assert _segments(data) == whole


def test_a_marker_split_at_the_64_kib_boundary_is_found() -> None:
    image = corpus.jpeg((32, 24))
    # A comment that puts the FF of the first segment after it on the last byte of the
    # first 64 KiB piece.
    pad = (1 << 16) - 1 - 2 - 4
    data = _after_soi(image, _com(b"p" * pad))
    assert data[(1 << 16) - 1] == 0xFF
    assert _codes(data)[:3] == [jpeg.SOI, 0xFE, image[3]]
    assert jpeg.image_end(io.BytesIO(data), len(data)) == len(data)


class _Recorder(io.BytesIO):
    """Records the size of every read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


def test_reads_are_bounded_pieces_never_the_whole_file() -> None:
    data = corpus.jpeg((1024, 768))  # noise: about a megabyte
    assert len(data) > 4 << 16
    fh = _Recorder(data)

    assert jpeg.image_end(fh, len(data)) == len(data)
    assert fh.asked
    assert all(0 < n <= 1 << 16 for n in fh.asked)


def test_a_consumer_may_read_the_file_between_segments() -> None:
    data = corpus.jpeg_with_thumbnail((64, 48))
    fh = io.BytesIO(data)
    seen = []
    for segment in jpeg.segments(fh, len(data)):
        fh.seek(0)
        fh.read(7)  # somewhere else entirely
        seen.append(segment)

    assert seen == _segments(data)


def test_an_eoi_before_any_scan_is_yielded_for_the_consumer_to_judge() -> None:
    assert _codes(b"\xff\xd8\xff\xd9") == [jpeg.SOI, jpeg.EOI]


# --- hostile ------------------------------------------------------------------------------


def _raises(data: bytes, error: type[Exception]) -> str:
    with pytest.raises(error) as caught:
        _segments(data)
    return str(caught.value)


def test_a_length_past_the_end_of_the_file_is_truncated_at_once() -> None:
    data = b"\xff\xd8\xff\xe1\x40\x00Exif\x00\x00"

    text = _raises(data, jpeg.Truncated)

    assert text == "inside the marker FF E1 segment at offset 2, which declares 16384 bytes"


@pytest.mark.parametrize("length", [b"\x00\x00", b"\x00\x01"])
def test_a_length_under_2_is_corrupt(length: bytes) -> None:
    text = _raises(b"\xff\xd8\xff\xfe" + length + b"xxxx", jpeg.Corrupt)

    assert text == "has a marker FF FE segment shorter than 2 bytes"


@pytest.mark.parametrize(
    ("data", "error", "text"),
    [
        (b"\x00\xd8\xff\xd9", jpeg.Corrupt, "does not start with an SOI marker"),
        (b"\xff\xd8\x00\x00", jpeg.Corrupt, "has no marker at offset 2 where one must be"),
        (b"\xff\xd8\xff\x00", jpeg.Corrupt, "has marker FF 00 at offset 2 before SOS"),
        (b"\xff\xd8\xff\xff\xd8", jpeg.Corrupt, "has marker FF D8 at offset 2 before SOS"),
        (b"\xff\xd8", jpeg.Truncated, "before its image data, with no SOS marker"),
        (b"\xff\xd8\xff\xff", jpeg.Truncated, "inside a marker"),
        (b"\xff\xd8\xff\xfe\x00", jpeg.Truncated, "inside the marker FF FE at offset 2"),
    ],
)
def test_broken_structure_says_where(data: bytes, error: type[Exception], text: str) -> None:
    assert _raises(data, error) == text


def test_a_file_ending_inside_the_scan_is_truncated() -> None:
    image = corpus.jpeg((64, 48))

    assert _raises(image[:-2], jpeg.Truncated) == "inside its image data"


def test_a_file_ending_after_a_scan_without_eoi_is_truncated() -> None:
    image = corpus.jpeg((64, 48), progressive=True)
    # Cut right after a table segment between two scans: no marker follows.
    second_sos = [s for s in _segments(image) if s.code == jpeg.SOS][1]
    cut = image[: second_sos.start]

    with pytest.raises(jpeg.Truncated):
        _segments(cut)


def test_the_readers_errors_are_the_builtins_consumers_map(tmp_path: Path) -> None:
    # content.py maps EOFError to image_truncated and ValueError to image_corrupt.
    assert issubclass(jpeg.Truncated, EOFError)
    assert issubclass(jpeg.Corrupt, ValueError)
    path = tmp_path / "cut.jpg"
    path.write_bytes(corpus.jpeg((64, 48))[:1000])
    with path.open("rb") as fh, pytest.raises(EOFError):
        jpeg.image_end(fh, 1000)
