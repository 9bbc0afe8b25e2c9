"""Real document bytes made on the fly: JPEG, PNG and PDF that every reader accepts."""

from __future__ import annotations

import functools
import hashlib
import io
import random

from PIL import Image


def jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, 120, (seed * 11) % 256))
    for x in range(0, width, 4):
        image.putpixel((x, (x + seed) % height), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def big_jpeg(size: int, seed: int = 7) -> bytes:
    """A real JPEG of about ``size`` bytes (a few % either way), for bodies that must be
    big: data after EOI is refused (trailing_data), so padding a small one no longer
    does. Noise at quality 100 without chroma subsampling takes ~4.1 bytes a pixel."""
    side = int((size / 4.1) ** 0.5)
    noise = random.Random(seed).randbytes(side * side * 3)  # noqa: S311 - not a secret
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), noise).save(buffer, "JPEG", quality=100, subsampling=0)
    return buffer.getvalue()


def png(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    image = Image.new("RGBA", (width, height), (10, (seed * 13) % 256, 200, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def pdf(pages: int = 1) -> bytes:
    images = [Image.new("RGB", (200, 280), (255, 255, 255 - i)) for i in range(pages)]
    buffer = io.BytesIO()
    images[0].save(buffer, "PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Where the photo was taken, as a phone writes it: Monas, Jakarta (EXIF 2.32 GPS IFD).
GPS_LATITUDE = ((6, 1), (10, 1), (3456, 100))
GPS_LONGITUDE = ((106, 1), (49, 1), (3210, 100))
CAMERA = "BerkasCam 3000"


@functools.cache
def _srgb_profile() -> bytes:
    # Made once: a profile's header carries the moment it was made, and two photos that
    # must be the same picture must carry the same profile.
    from PIL import ImageCms  # noqa: PLC0415 - only the photo samples need it

    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def gps_jpeg(width: int = 96, height: int = 64, seed: int = 0, orientation: int = 1) -> bytes:
    """A phone photo: EXIF with a GPS position, the camera model and an orientation, a
    comment, and an sRGB ICC profile that must survive stripping."""
    from PIL.TiffImagePlugin import IFDRational  # noqa: PLC0415 - only this sample needs it

    image = Image.new("RGB", (width, height), ((seed * 53) % 256, 90, 30))
    for x in range(width):
        image.putpixel((x, (x * 3 + seed) % height), (250, 250, (x * 7) % 256))
    exif = Image.Exif()
    exif[0x0110] = CAMERA  # Model
    exif[0x0112] = orientation  # Orientation
    gps = exif.get_ifd(0x8825)
    gps.update(
        {
            1: "S",
            2: tuple(IFDRational(*part) for part in GPS_LATITUDE),
            3: "E",
            4: tuple(IFDRational(*part) for part in GPS_LONGITUDE),
        }
    )
    icc = _srgb_profile()
    buffer = io.BytesIO()
    image.save(
        buffer, "JPEG", quality=90, exif=exif, icc_profile=icc, comment=b"shot at home, Menteng"
    )
    return buffer.getvalue()


def text_png(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    """A PNG carrying text chunks (an author, a free comment) and a timestamp."""
    from PIL import PngImagePlugin  # noqa: PLC0415 - only this sample needs it

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Budi Santoso")
    info.add_itxt("Comment", "alamat: Jl. Sudirman 1", zip=True)
    image = Image.new("RGB", (width, height), (200, (seed * 19) % 256, 40))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def pixels(data: bytes) -> tuple[tuple[int, int], bytes]:
    """An image's size and decoded RGB pixels, to compare what was sent and served."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
        return rgb.size, rgb.tobytes()
