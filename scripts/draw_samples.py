"""Draws the documents ``berkas samples`` ships (src/berkas/cli/sample_documents/):
synthetic, marked SAMPLE, of no real person. Run it from a checkout with Pillow
(``make install``) after changing a drawing, and commit the files it writes:

    .venv/bin/python scripts/draw_samples.py

The wheel ships the files rather than this code, so ``berkas samples`` works in an
SDK-only install (the wheel without extras, no Pillow).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

OUT = Path(__file__).resolve().parent.parent / "src" / "berkas" / "cli" / "sample_documents"

# A KTP is an ID-1 card (ISO/IEC 7810: 85.60 x 53.98 mm); 10 px a millimetre.
CARD = (856, 540)
INK = (20, 30, 60)
STAMP = (200, 20, 20)
# No region has code 00 (Dukcapil numbers start with the province code, 11..94), so
# this NIK can belong to no one; it still has the 16 digits KTP's NO_KTP field asks for.
NIK = "0000000000000000"


def _font(size: int) -> Font:

    # Pillow's bundled font (scalable where Pillow has FreeType): nothing from the system.
    return ImageFont.load_default(size=size)


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def _watermark(image: Image.Image, text: str = "SAMPLE") -> Image.Image:
    """``text`` across the middle, tilted and see-through, as specimens are stamped."""

    width, height = image.size
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    font = _font(min(height // 4, width // 5))
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text(
        ((width - (right - left)) / 2 - left, (height - (bottom - top)) / 2 - top),
        text,
        font=font,
        fill=(*STAMP, 110),
    )
    layer = layer.rotate(18, resample=Image.Resampling.BICUBIC)
    return Image.alpha_composite(image.convert("RGBA"), layer)


def _person(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> None:
    """A head-and-shoulders outline inside ``box``: a placeholder, not a face."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    cx = left + width // 2
    head = width // 3
    draw.ellipse(
        (cx - head // 2 - 4, top + height // 6, cx + head // 2 + 4, top + height // 6 + head + 16),
        fill=(120, 130, 150),
    )
    draw.pieslice(
        (left + width // 10, top + height // 2 + 10, right - width // 10, bottom + height // 3),
        180,
        360,
        fill=(120, 130, 150),
    )


def _card() -> Image.Image:

    width, height = CARD
    card = Image.new("RGB", CARD)
    draw = ImageDraw.Draw(card)
    for y in range(height):  # KTP-el's pale blue, lighter towards the bottom
        shade = int(40 * y / height)
        draw.line([(0, y), (width, y)], fill=(150 + shade, 200 + shade // 2, 235))
    title, body, small = _font(30), _font(24), _font(18)
    draw.text((width / 2, 28), "PROVINSI CONTOH", font=title, fill=INK, anchor="mt")
    draw.text((width / 2, 64), "KABUPATEN SAMPEL", font=title, fill=INK, anchor="mt")
    draw.text((36, 118), f"NIK : {NIK}", font=_font(32), fill=INK)
    rows = [
        ("Nama", "CONTOH SAMPEL"),
        ("Tempat/Tgl Lahir", "CONTOH, 01-01-1990"),
        ("Jenis Kelamin", "-"),
        ("Alamat", "JL. CONTOH NO. 0"),
        ("Agama", "-"),
        ("Status Perkawinan", "-"),
        ("Pekerjaan", "CONTOH"),
        ("Kewarganegaraan", "WNI"),
        ("Berlaku Hingga", "SEUMUR HIDUP"),
    ]
    for i, (label, value) in enumerate(rows):
        y = 172 + i * 33
        draw.text((36, y), label, font=body, fill=INK)
        draw.text((262, y), f": {value}", font=body, fill=INK)
    photo = (636, 150, 816, 390)
    draw.rectangle(photo, fill=(225, 228, 235), outline=INK, width=2)
    _person(draw, photo)
    draw.text((726, 410), "KOTA CONTOH", font=small, fill=INK, anchor="mt")
    draw.text((726, 434), "01-01-2020", font=small, fill=INK, anchor="mt")
    draw.text(
        (width / 2, height - 14),
        "SAMPLE - NOT A REAL DOCUMENT - made by berkas samples",
        font=small,
        fill=STAMP,
        anchor="mb",
    )
    return _watermark(card).convert("RGB")


def _ktp_jpeg() -> bytes:
    return _jpeg(_card())


def _ktp_pdf() -> bytes:

    # An A4 page at 100 dpi with the card on it, as a phone's scanner app would save it.
    page = Image.new("RGB", (827, 1169), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    draw.text((60, 60), "SAMPLE scan: ID card (KTP-like)", font=_font(28), fill=INK)
    draw.text((60, 100), "synthetic, no real person (berkas samples)", font=_font(18), fill=STAMP)
    card = _card().resize((CARD[0] * 3 // 4, CARD[1] * 3 // 4))
    page.paste(card, ((827 - card.width) // 2, 160))
    buffer = io.BytesIO()
    page.save(buffer, "PDF", resolution=100.0, title="berkas SAMPLE KTP scan")
    return buffer.getvalue()


def _selfie() -> bytes:

    image = Image.new("RGB", (480, 640), (214, 222, 230))
    draw = ImageDraw.Draw(image)
    _person(draw, (40, 60, 440, 640))
    draw.text((240, 24), "SAMPLE owner photo", font=_font(28), fill=INK, anchor="mt")
    return _jpeg(_watermark(image))


def _shop() -> bytes:

    width, height = 800, 600
    image = Image.new("RGB", (width, height), (170, 205, 235))  # sky
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 470, width, height), fill=(150, 150, 150))  # pavement
    draw.rectangle((90, 150, 710, 470), fill=(235, 225, 200), outline=INK, width=3)
    for i in range(8):  # a striped awning
        colour = (200, 40, 40) if i % 2 == 0 else (245, 245, 245)
        draw.rectangle((90 + i * 77.5, 210, 90 + (i + 1) * 77.5, 250), fill=colour)
    draw.rectangle((150, 160, 650, 205), fill=(30, 90, 60))
    draw.text((400, 182), "TOKO CONTOH", font=_font(34), fill=(255, 255, 255), anchor="mm")
    draw.rectangle((340, 300, 460, 470), fill=(110, 70, 40), outline=INK, width=2)  # door
    for left in (130, 520):  # windows
        draw.rectangle((left, 290, left + 150, 400), fill=(190, 220, 240), outline=INK, width=2)
    return _jpeg(_watermark(image))


DRAWINGS = {
    "ktp-sample.jpg": _ktp_jpeg,
    "ktp-sample.pdf": _ktp_pdf,
    "selfie-sample.jpg": _selfie,
    "shop-sample.jpg": _shop,
}


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, draw in DRAWINGS.items():
        (OUT / name).write_bytes(draw())
        print(OUT / name)
