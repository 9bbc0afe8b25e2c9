"""Privacy by default on a real server, embedded and PostgreSQL + Ceph RGW (issue 11): a
phone photo is served without its GPS position, camera, comment and XMP, with the same
pixels and its ICC colour; the answer says what went; a category configured to keep
metadata keeps it."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.support import samples
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server

# LOGO keeps what its image carries (BERKAS_KEEP_METADATA_CATEGORIES); the rest strip.
KEEPS = "LOGO"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[Server]:
    srv = Server(
        data_dir=tmp_path_factory.mktemp("privacy") / "data",
        env={"BERKAS_KEEP_METADATA_CATEGORIES": KEEPS, **backend_env},
    )
    srv.start()
    yield srv
    srv.stop()


def _served(partner: Partner, answer: dict[str, object]) -> bytes:
    got = httpx.get(str(answer["link"]), timeout=30)
    assert got.status_code == 200, got.text
    return got.content


def _exif(data: bytes) -> tuple[dict[int, object], dict[int, object]]:
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        return dict(exif), dict(exif.get_ifd(0x8825))


def _icc(data: bytes) -> bytes | None:
    with Image.open(io.BytesIO(data)) as image:
        return image.info.get("icc_profile")


def test_a_gps_photo_is_served_without_it_and_with_the_same_pixels(
    server: Server, partner: Partner
) -> None:
    photo = samples.gps_jpeg(seed=3)
    assert _exif(photo)[1], "the sample must carry a GPS position"

    answer = partner.upload(photo, filename="IMG_2041.jpg").json()
    served = _served(partner, answer)

    assert answer["metadata_removed"] == ["COMMENT", "EXIF", "GPS"]
    assert _exif(served) == ({}, {})
    # Nothing of it is left in the bytes either: not the camera, not the comment.
    assert samples.CAMERA.encode() not in served
    assert b"Menteng" not in served
    assert samples.pixels(served) == samples.pixels(photo)
    assert _icc(served) == _icc(photo)
    # What the answer states is what is stored and served.
    assert answer["size"] == len(served)
    assert answer["sha256"] == samples.sha256(served)
    described = partner.http.request("GET", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())
    assert described.json()["metadata_removed"] == ["COMMENT", "EXIF", "GPS"]


def test_a_turned_photo_is_stored_upright_without_its_exif(
    server: Server, partner: Partner
) -> None:
    # Orientation 6: the camera was held sideways; viewers turn it 90 degrees clockwise.
    photo = samples.gps_jpeg(width=96, height=64, seed=4, orientation=6)
    with Image.open(io.BytesIO(photo)) as image:
        from PIL import ImageOps  # noqa: PLC0415

        upright = ImageOps.exif_transpose(image)
        expected_size, expected = upright.size, upright.convert("RGB").tobytes()

    answer = partner.upload(photo).json()
    served = _served(partner, answer)

    # The answer says the stored bytes are a new encoding (their sha256 is not the sent one).
    assert answer["metadata_removed"] == ["COMMENT", "EXIF", "GPS", "ORIENTATION"]
    assert answer["reencoded"] is True
    assert answer["sha256"] != samples.sha256(photo)
    size, pixels = samples.pixels(served)
    assert size == expected_size == (64, 96)
    # Re-encoded once (quality 95) to apply the turn: close to the upright source.
    assert sum(abs(a - b) for a, b in zip(pixels, expected, strict=True)) / len(pixels) < 3
    assert _exif(served) == ({}, {})
    described = partner.http.request("GET", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())
    assert (described.json()["width"], described.json()["height"]) == (64, 96)
    assert described.json()["reencoded"] is True


def test_png_text_and_time_are_stripped_pixels_kept(server: Server, partner: Partner) -> None:
    image = samples.text_png(seed=5)

    answer = partner.upload(image, category="PHOTO_PROOF", code=None).json()
    served = _served(partner, answer)

    assert answer["metadata_removed"] == ["TEXT"]
    assert b"Budi Santoso" not in served
    assert samples.pixels(served) == samples.pixels(image)


def test_a_clean_image_is_stored_byte_for_byte(server: Server, partner: Partner) -> None:
    photo = samples.jpeg(seed=6)

    answer = partner.upload(photo).json()

    assert answer["metadata_removed"] == []
    assert _served(partner, answer) == photo
    assert answer["sha256"] == samples.sha256(photo)


def test_a_category_configured_to_keep_metadata_keeps_it(server: Server, partner: Partner) -> None:
    photo = samples.gps_jpeg(seed=7)

    answer = partner.upload(photo, category=KEEPS, code=None).json()

    assert answer["metadata_removed"] == []
    assert _served(partner, answer) == photo
