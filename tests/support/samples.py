"""Real document bytes made on the fly: JPEG, PNG and PDF that every reader accepts."""

from __future__ import annotations

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
