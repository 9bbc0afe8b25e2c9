"""The image and PDF corpus against a real server (issue 9): what phones, scanners and
office suites really send is stored byte for byte; truncated, corrupt, bomb, disguised,
polyglot and active files are refused with their own code, and nothing of them is kept.

Every vector is built in code (tests/support/corpus.py) and tallied per family.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.conftest import spool_and_temp_files
from tests.support import corpus, samples
from tests.support.errors import assert_error
from tests.support.fixture_server import FixtureServer, send
from tests.support.partner import FILE_PATH, PREFIX, Partner, Parts
from tests.support.server import Server
from tests.support.vectors import server_errors, tally


@dataclass(frozen=True)
class Vector:
    """One upload: the bytes (built when the test runs), how they are labelled, and the
    refusal code expected (None: stored)."""

    make: Callable[[], bytes]
    refusal: str | None = None
    filename: str = "ktp.jpg"
    mime: str = "image/jpeg"
    category: str = "DOCUMENT"
    code: str | None = "KTP"


def _jpeg(size: tuple[int, int] = (320, 240), mode: str = "RGB", **options: object) -> bytes:
    return corpus.jpeg(size, mode, **options)


def _half(make: Callable[[], bytes]) -> Callable[[], bytes]:
    return lambda: (data := make())[: len(data) // 2]


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _bad_scan_marker() -> bytes:
    # An undefined marker (FF 99) in the middle of the entropy-coded data.
    image = _jpeg()
    middle = (image.index(b"\xff\xda") + len(image)) // 2
    return image[:middle] + b"\xff\x99\x00\x10" + image[middle:]


def _garbled_idat() -> bytes:
    # The deflate stream damaged under a recomputed CRC: only inflating finds it.
    image = corpus.png((160, 120), "RGB")
    start = image.index(b"IDAT") + 4
    length = int.from_bytes(image[start - 8 : start - 4], "big")
    data = bytearray(image[start : start + length])
    data[2:80] = b"\xff" * 78
    return image[: start - 8] + corpus.chunk(b"IDAT", bytes(data)) + image[start + length + 4 :]


def _jar() -> bytes:
    return corpus.zip_of("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMain-Class: X\n")


IMAGES: dict[str, Vector] = {
    # Stored: what cameras, phones and editors write.
    "baseline-jpeg": Vector(_jpeg),
    "progressive-jpeg": Vector(lambda: _jpeg(progressive=True)),
    "cmyk-jpeg": Vector(lambda: _jpeg((200, 120), "CMYK")),
    "grayscale-jpeg": Vector(lambda: _jpeg((200, 120), "L")),
    "restart-marker-jpeg": Vector(lambda: _jpeg(restart_marker_blocks=4)),
    "exif-thumbnail-jpeg": Vector(corpus.jpeg_with_thumbnail),
    "jpeg-with-1kib-zero-padding": Vector(lambda: _jpeg() + bytes(1024)),
    "rgba-png": Vector(lambda: corpus.png((160, 120), "RGBA"), filename="ktp.png"),
    "palette-png": Vector(
        lambda: corpus.encode(corpus.noise((160, 120)).convert("P"), "PNG"), filename="a.png"
    ),
    "interlaced-png": Vector(lambda: corpus.png_interlaced((67, 45)), filename="i.png"),
    "16-bit-png": Vector(lambda: corpus.png_16bit((64, 48)), filename="deep.png"),
    "png-named-jpg": Vector(lambda: corpus.png((64, 48), "RGB")),
    # Refused: damaged.
    "truncated-jpeg": Vector(_half(_jpeg), "image_truncated"),
    "truncated-progressive-jpeg": Vector(_half(lambda: _jpeg(progressive=True)), "image_truncated"),
    "jpeg-without-eoi": Vector(lambda: _jpeg()[:-2], "image_truncated"),
    "truncated-png": Vector(_half(lambda: corpus.png((160, 120), "RGB")), "image_truncated"),
    "jpeg-bad-marker-in-scan": Vector(_bad_scan_marker, "image_corrupt"),
    "png-garbled-idat": Vector(_garbled_idat, "image_corrupt"),
    # Refused: decompression bombs.
    "png-declares-400-megapixels": Vector(
        lambda: corpus.png_declaring(20_000, 20_000), "image_too_large"
    ),
    "jpeg-declares-60000-square": Vector(
        lambda: corpus.jpeg_declaring(60_000, 60_000), "image_too_large"
    ),
    "png-zlib-bomb": Vector(corpus.png_zlib_bomb, "image_corrupt"),
    # Refused: other formats in a JPEG's clothes.
    **{
        f"{name}-as-jpeg": Vector(_const(data), "unsupported_type")
        for name, data in corpus.DISGUISED.items()
    },
    # Refused: polyglots.
    "jpeg+zip": Vector(
        lambda: _jpeg() + corpus.zip_of("a.html", "<script>x</script>"), "trailing_data"
    ),
    "jpeg+jar": Vector(lambda: _jpeg() + _jar(), "trailing_data"),
    "exif-jpeg+zip": Vector(
        lambda: corpus.jpeg_with_thumbnail() + corpus.zip_of("a", "b"), "trailing_data"
    ),
    "png+html-after-iend": Vector(
        lambda: corpus.png((64, 48), "RGB") + b"<html><script>alert(1)</script></html>",
        "trailing_data",
        filename="p.png",
    ),
    "gifar": Vector(lambda: corpus.DISGUISED["gif"] + _jar(), "unsupported_type"),
    "zip-in-jpeg-comment": Vector(corpus.jpeg_with_zip_in_comment, "embedded_archive"),
    "zip-in-png-chunk": Vector(corpus.png_with_zip_chunk, "embedded_archive", filename="z.png"),
}

_PDF = {"filename": "ktp.pdf", "mime": "application/pdf"}
PDFS: dict[str, Vector] = {
    "plain-pdf": Vector(corpus.plain_pdf, **_PDF),
    "pillow-pdf": Vector(lambda: samples.pdf(2), **_PDF),
    "object-stream-pdf": Vector(corpus.packed_pdf, **_PDF),
    "pdf-with-web-link": Vector(lambda: corpus.raw_pdf(corpus.URI_OPEN_ACTION), **_PDF),
    "pdf-as-service-agreement": Vector(corpus.plain_pdf, category="SERVICE_AGREEMENT", **_PDF),
    "pdf+js": Vector(corpus.pdf_with_javascript, "pdf_active_content", **_PDF),
    "pdf-page-open-js": Vector(
        lambda: corpus.pdf_with_javascript(on_page=True), "pdf_active_content", **_PDF
    ),
    "pdf-hex-escaped-js": Vector(
        lambda: corpus.raw_pdf(corpus.JS_HEX_ESCAPED), "pdf_active_content", **_PDF
    ),
    "pdf-js-in-object-stream": Vector(
        lambda: corpus.packed_pdf(corpus.JS_HEX_ESCAPED), "pdf_active_content", **_PDF
    ),
    "pdf-launch": Vector(
        lambda: corpus.pdf_with_open_action(corpus.launch_action()), "pdf_active_content", **_PDF
    ),
    "pdf-submit-form": Vector(
        lambda: corpus.raw_pdf(corpus.SUBMIT_OPEN_ACTION), "pdf_active_content", **_PDF
    ),
    "pdf-embedded-file": Vector(corpus.pdf_with_attachment, "pdf_embedded_file", **_PDF),
    "pdf-zip-in-stream": Vector(corpus.pdf_with_zip_inside, "embedded_archive", **_PDF),
    "pdf+zip-after-eof": Vector(
        lambda: corpus.plain_pdf() + corpus.zip_of("a", "b"), "trailing_data", **_PDF
    ),
    "truncated-pdf": Vector(_half(corpus.plain_pdf), "pdf_corrupt", **_PDF),
    # Refused: work bombs for the parser.
    "pdf-huge-xref-table": Vector(
        lambda: corpus.pdf_declaring_entries(60_000, stream=False), "pdf_too_complex", **_PDF
    ),
    "pdf-xref-stream-bomb": Vector(
        lambda: corpus.pdf_declaring_entries(1_900_000, stream=True), "pdf_corrupt", **_PDF
    ),
    "pdf-xref-pointing-away": Vector(
        lambda: corpus.pdf_with_misplaced_entries(2_000, misplaced=2_000), "pdf_corrupt", **_PDF
    ),
    "pdf-object-stream-bomb": Vector(
        lambda: corpus.packed_pdf(b"", (b"(" + b"0" * 20_000_000 + b")",)), "pdf_corrupt", **_PDF
    ),
    "html-then-pdf": Vector(
        lambda: b"<html><script>alert(1)</script></html>\n" + corpus.plain_pdf(),
        "unsupported_type",
        **_PDF,
    ),
    "pdf-as-photo-proof": Vector(
        corpus.plain_pdf, "type_not_allowed", category="PHOTO_PROOF", code=None, **_PDF
    ),
}


def _serve(tmp_path_factory: pytest.TempPathFactory, family: str) -> Iterator[Server]:
    # The embedded default only: inspection happens before any store is touched, so the
    # scale-out backends would add minutes and no coverage here.
    server = Server(data_dir=tmp_path_factory.mktemp(f"corpus-{family}") / "data")
    server.start()
    try:
        yield server
        assert server_errors(family, server.metrics_url) == 0, server.output()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def image_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "images")


@pytest.fixture(scope="module")
def pdf_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from _serve(tmp_path_factory, "pdf")


def _upload(partner: Partner, content: bytes, vector: Vector) -> httpx.Response:
    # As a partner's HTTP library sends it, with the part labelled as the vector says.
    parts: Parts = [("category", (None, vector.category, None))]
    if vector.code is not None:
        parts.append(("code", (None, vector.code, None)))
    parts.append(("file", (vector.filename, content, vector.mime)))
    return partner.http.request("POST", FILE_PATH, files=parts, headers=partner.auth(), timeout=60)


def _stored(server: Server) -> tuple[set[str], int]:
    """The sha256 of every stored file's row, and how many blobs are on disk."""
    with closing(sqlite3.connect(server.data_dir / "berkas.db")) as db:
        hashes = {row[0] for row in db.execute("SELECT sha256 FROM files")}
    root = server.data_dir / "blobs"
    blobs = [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]
    return hashes, len(blobs)


def _check(server: Server, partner: Partner, family: str, vector: Vector) -> None:
    content = vector.make()
    digest = hashlib.sha256(content).hexdigest()
    before = _stored(server)

    response = _upload(partner, content, vector)
    tally(family, response.status_code, accepted=response.status_code == 200)

    if vector.refusal is None:
        assert response.status_code == 200, response.text
        body = response.json()
        meta = httpx.get(f"{server.url}{PREFIX}/file/{body['id']}", headers=partner.auth())
        assert meta.status_code == 200, meta.text
        download = httpx.get(meta.json()["link"], timeout=30)
        assert download.headers["content-type"] == body["content_type"]
        assert body["sha256"] == hashlib.sha256(download.content).hexdigest()
        if body["metadata_removed"]:
            # Stripped before storing (privacy by default): the same picture, without
            # what the vector carried beside it.
            assert samples.pixels(download.content) == samples.pixels(content)
        else:
            assert body["sha256"] == digest
            assert download.content == content
    else:
        assert_error(response, 415, vector.refusal)
        # No row, no blob: the store is as it was (the same bytes may have been stored
        # before by a category that takes them, as with pdf-as-photo-proof).
        assert _stored(server) == before
    assert spool_and_temp_files(server.data_dir) == []


@pytest.fixture(scope="module")
def image_partner(image_server: Server) -> Partner:
    return image_server.new_partner()


@pytest.fixture(scope="module")
def pdf_partner(pdf_server: Server) -> Partner:
    return pdf_server.new_partner()


@pytest.mark.parametrize("name", list(IMAGES))
def test_image_corpus(image_server: Server, image_partner: Partner, name: str) -> None:
    _check(image_server, image_partner, "images", IMAGES[name])


@pytest.mark.parametrize("name", list(PDFS))
def test_pdf_corpus(pdf_server: Server, pdf_partner: Partner, name: str) -> None:
    _check(pdf_server, pdf_partner, "pdf", PDFS[name])


def test_a_refusal_says_what_was_found_and_what_to_do(pdf_partner: Partner) -> None:
    partner = pdf_partner
    response = _upload(partner, corpus.pdf_with_javascript(), PDFS["pdf+js"])
    tally("pdf", response.status_code)

    message = assert_error(response, 415, "pdf_active_content")["message"]

    assert "JavaScript" in message
    assert "DOCUMENT/KTP must be a plain document" in message


# --- the same refusals for a fetched file_url: 422, each keeping its code (DESIGN 2.5) ---

FETCHED = {
    "/polyglot.jpg": (IMAGES["jpeg+zip"], "trailing_data"),
    "/zip-in-chunk.png": (IMAGES["zip-in-png-chunk"], "embedded_archive"),
    "/active.pdf": (PDFS["pdf+js"], "pdf_active_content"),
    "/attachment.pdf": (PDFS["pdf-embedded-file"], "pdf_embedded_file"),
}


@pytest.fixture(scope="module")
def origin() -> Iterator[FixtureServer]:
    with FixtureServer("127.0.0.1") as fixture:
        for path, (vector, _) in FETCHED.items():
            fixture.route(path, send(200, vector.make(), content_type=vector.mime))
        yield fixture


@pytest.fixture(scope="module")
def fetching_server(
    tmp_path_factory: pytest.TempPathFactory, origin: FixtureServer
) -> Iterator[Server]:
    server = Server(
        data_dir=tmp_path_factory.mktemp("corpus-fetch") / "data",
        env={
            "BERKAS_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
            "BERKAS_FETCH_ALLOW_PORTS": str(origin.port),
        },
    )
    server.start()
    try:
        yield server
        assert server_errors("fetched", server.metrics_url) == 0, server.output()
    finally:
        server.stop()


@pytest.mark.parametrize("path", list(FETCHED))
def test_a_fetched_hostile_file_is_refused_with_its_code_as_a_422(
    origin: FixtureServer, fetching_server: Server, path: str
) -> None:
    vector, code = FETCHED[path]
    partner = fetching_server.new_partner()
    before = _stored(fetching_server)

    response = partner.upload(
        None, category=vector.category, code=vector.code, file_url=origin.url(path)
    )
    tally("fetched", response.status_code)

    assert_error(response, 422, code)
    assert _stored(fetching_server) == before
    assert spool_and_temp_files(fetching_server.data_dir) == []
