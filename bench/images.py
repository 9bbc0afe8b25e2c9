"""Deterministic photo-like images for the benchmark: not blank canvases.

A scene is a smooth two-colour gradient, a few dozen soft blurred blobs (drawn small and
upscaled, like out-of-focus objects) and seeded sensor-like grain. Everything comes from
``random.Random(seed)``, so the same arguments give the same bytes on every machine with
the same Pillow. JPEG and PNG encoders then see real entropy, and the decoders on both
servers do real work.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter


def photo(width: int, height: int, seed: int = 0, grain: float = 0.12) -> Image.Image:
    """An RGB ``width`` x ``height`` scene; ``grain`` (0..1) is the noise blend weight."""
    rng = random.Random(seed)  # noqa: S311 - reproducible pixels, not secrets
    # Low-resolution layer: gradient sky/ground plus blurred blobs, upscaled smoothly.
    small_w, small_h = max(8, width // 8), max(8, height // 8)
    top = tuple(rng.randrange(256) for _ in range(3))
    bottom = tuple(rng.randrange(256) for _ in range(3))
    mask = Image.linear_gradient("L").resize((small_w, small_h))
    scene = Image.composite(
        Image.new("RGB", (small_w, small_h), bottom),
        Image.new("RGB", (small_w, small_h), top),
        mask,
    )
    draw = ImageDraw.Draw(scene)
    for _ in range(40):
        x, y = rng.randrange(small_w), rng.randrange(small_h)
        r = rng.randrange(2, max(3, min(small_w, small_h) // 4))
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    scene = scene.filter(ImageFilter.GaussianBlur(radius=max(1, small_w // 200)))
    scene = scene.resize((width, height), Image.Resampling.BILINEAR)
    # Crisp detail at full resolution: thin lines, like edges and text on a document.
    draw = ImageDraw.Draw(scene)
    for _ in range(60):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(-width // 6, width // 6), y0 + rng.randrange(-20, 20)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.line((x0, y0, x1, y1), fill=colour, width=max(1, width // 800))
    if grain > 0:
        noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
        scene = Image.blend(scene, noise, grain)
    return scene


def encode(image: Image.Image, fmt: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def _sized(target_bytes: int, fmt: str, seed: int, grain: float) -> bytes:
    """An image of about ``target_bytes`` (within a few %), 4:3, by solving for its side."""
    aspect = 4 / 3
    probe_w = 400
    probe = encode(photo(probe_w, int(probe_w / aspect), seed, grain), fmt)
    bytes_per_pixel = len(probe) / (probe_w * int(probe_w / aspect))
    data = probe
    for _ in range(3):
        pixels = target_bytes / bytes_per_pixel
        width = max(16, int((pixels * aspect) ** 0.5))
        height = max(16, int(width / aspect))
        data = encode(photo(width, height, seed, grain), fmt)
        if abs(len(data) - target_bytes) <= 0.04 * target_bytes:
            break
        bytes_per_pixel = len(data) / (width * height)
    return data


def jpeg_of_size(target_bytes: int, seed: int = 0) -> bytes:
    # Coarser grain for big files keeps the pixel count under berkas' 40 MP default.
    grain = 0.12 if target_bytes <= 2_000_000 else 0.35
    return _sized(target_bytes, "JPEG", seed, grain=grain)


def png_of_size(target_bytes: int, seed: int = 0) -> bytes:
    # Light grain: PNG of a noisy photo is ~3 bytes a pixel, so the pixel count stays
    # modest (about 5 MP for 15 MB) and well inside both servers' pixel limits.
    return _sized(target_bytes, "PNG", seed, grain=0.10)


def jpeg_12mp(target_bytes: int = 5_000_000, seed: int = 0) -> bytes:
    """A 4000 x 3000 JPEG of about ``target_bytes``, by solving for the grain on a crop."""
    lo, hi = 0.0, 0.6
    probe_w, probe_h = 800, 600
    want = target_bytes * (probe_w * probe_h) / (4000 * 3000)
    for _ in range(10):
        mid = (lo + hi) / 2
        size = len(encode(photo(probe_w, probe_h, seed, mid), "JPEG"))
        lo, hi = (mid, hi) if size < want else (lo, mid)
    return encode(photo(4000, 3000, seed, (lo + hi) / 2), "JPEG")
