"""Real document bytes made on the fly: JPEG, PNG and PDF that every reader accepts."""

from __future__ import annotations

import hashlib
import io

from PIL import Image


def jpeg(width: int = 64, height: int = 48, seed: int = 0) -> bytes:
    image = Image.new("RGB", (width, height), ((seed * 37) % 256, 120, (seed * 11) % 256))
    for x in range(0, width, 4):
        image.putpixel((x, (x + seed) % height), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
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
