"""Malformed multipart uploads against a real ``berkas serve`` (issue 9): each one a
precise 4xx in the envelope, never a 5xx, and nothing stored, no row, no blob, no spool.

Sent on raw sockets, byte for byte, since no HTTP library frames a body this badly.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import spool_and_temp_files
from tests.support import samples
from tests.support.http import (
    RawResponse,
    metric_statuses,
    read_response,
    spooled,
    wait_for,
)
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server
from tests.support.vectors import server_errors, tally

BODY_IDLE = 2  # the server's body idle timeout, seconds
MIB = 1024 * 1024
B = "corpus-boundary-7f3a"
CT = f"multipart/form-data; boundary={B}"


def part(name: bytes, value: bytes, *, filename: bytes | None = None, extra: bytes = b"") -> bytes:
    disposition = b'form-data; name="' + name + b'"'
    if filename is not None:
        disposition += b'; filename="' + filename + b'"'
    return (
        f"--{B}\r\n".encode()
        + b"Content-Disposition: "
        + disposition
        + b"\r\n"
        + extra
        + b"\r\n"
        + value
        + b"\r\n"
    )


END = f"--{B}--\r\n".encode()
JPEG = samples.jpeg(seed=3)
CATEGORY = part(b"category", b"PHOTO_PROOF")
FILE = part(b"file", JPEG, filename=b"photo.jpg")
VALID = CATEGORY + FILE + END


@dataclass(frozen=True)
class Vector:
    """One hostile upload: the body, its Content-Type, and the precise refusal."""

    body: bytes
    status: int
    code: str
    content_type: str | None = CT
    # "exact" (Content-Length of the body), "short"/"long" (a lie), "chunked".
    framing: str = "exact"


VECTORS: dict[str, Vector] = {
    "no Content-Type": Vector(VALID, 400, "multipart_required", content_type=None),
    "not multipart": Vector(VALID, 400, "multipart_required", content_type="text/plain"),
    "no boundary": Vector(VALID, 400, "multipart_malformed", content_type="multipart/form-data"),
    "empty boundary": Vector(
        VALID, 400, "multipart_malformed", content_type="multipart/form-data; boundary="
    ),
    "boundary over 200 characters": Vector(
        VALID, 400, "multipart_malformed", content_type="multipart/form-data; boundary=" + "b" * 201
    ),
    "wrong boundary": Vector(
        VALID, 400, "multipart_malformed", content_type="multipart/form-data; boundary=other"
    ),
    "empty body": Vector(b"", 400, "multipart_malformed"),
    "only the closing boundary": Vector(END, 400, "category_missing"),
    "unterminated part": Vector(CATEGORY + FILE[:-200], 400, "multipart_malformed"),
    "no closing boundary": Vector(CATEGORY + FILE, 400, "multipart_malformed"),
    "LF line endings": Vector(VALID.replace(b"\r\n", b"\n"), 400, "multipart_malformed"),
    "garbage after a boundary": Vector(
        f"--{B}garbage\r\n".encode() + VALID, 400, "multipart_malformed"
    ),
    # python-multipart takes no preamble but blank lines (browsers send none).
    "preamble": Vector(b"a preamble\r\n" + VALID, 400, "multipart_malformed"),
    "huge preamble": Vector(b"x" * (2 * MIB) + b"\r\n" + VALID, 400, "multipart_malformed"),
    "huge preamble of blank lines": Vector(b"\r\n" * MIB + VALID, 413, "body_too_large"),
    "10,000 parts": Vector(
        b"".join(part(b"f%d" % i, b"v") for i in range(10_000)) + END,
        400,
        "multipart_too_many_parts",
    ),
    "huge part header": Vector(
        part(b"category", b"PHOTO_PROOF", extra=b"X-Pad: " + b"a" * (100 * 1024) + b"\r\n")
        + FILE
        + END,
        400,
        "multipart_malformed",
    ),
    "huge part header name": Vector(
        part(b"category", b"PHOTO_PROOF", extra=b"X" * (100 * 1024) + b": a\r\n") + FILE + END,
        400,
        "multipart_malformed",
    ),
    "part header without colon": Vector(
        part(b"category", b"PHOTO_PROOF", extra=b"NoColonHere\r\n") + FILE + END,
        400,
        "multipart_malformed",
    ),
    "part without Content-Disposition": Vector(
        f"--{B}\r\nContent-Type: text/plain\r\n\r\nPHOTO_PROOF\r\n".encode() + FILE + END,
        400,
        "multipart_malformed",
    ),
    "Content-Disposition without name": Vector(
        f"--{B}\r\nContent-Disposition: form-data\r\n\r\nPHOTO_PROOF\r\n".encode() + FILE + END,
        400,
        "multipart_malformed",
    ),
    "duplicate field": Vector(
        CATEGORY + part(b"category", b"LOGO") + FILE + END, 400, "duplicate_field"
    ),
    "duplicate file": Vector(CATEGORY + FILE + FILE + END, 400, "multiple_files"),
    "file in another field": Vector(
        CATEGORY + part(b"document", JPEG, filename=b"a.jpg") + END, 400, "unknown_field"
    ),
    "field over 4096 bytes": Vector(
        CATEGORY + part(b"code", b"K" * 5000) + FILE + END, 400, "field_too_long"
    ),
    "non-UTF-8 field value": Vector(
        part(b"category", b"PHOTO_\xff\xfe") + FILE + END, 400, "field_invalid"
    ),
    "non-UTF-8 field name": Vector(
        CATEGORY + part(b"caf\xe9", b"x") + FILE + END, 400, "field_invalid"
    ),
    "non-UTF-8 filename": Vector(
        CATEGORY + part(b"file", JPEG, filename=b"caf\xe9.jpg") + END, 400, "field_invalid"
    ),
    "Content-Length short of the body": Vector(VALID, 400, "multipart_malformed", framing="short"),
    "Content-Length past the body, then silence": Vector(
        VALID[:-100], 408, "request_timeout", framing="long"
    ),
    "chunked, unterminated multipart": Vector(
        CATEGORY + FILE, 400, "multipart_malformed", framing="chunked"
    ),
    "chunked, bad chunk framing": Vector(VALID, 400, "malformed_http", framing="bad-chunked"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        data_dir=tmp_path_factory.mktemp("multipart") / "data",
        env={"BERKAS_BODY_IDLE_TIMEOUT_SECONDS": str(BODY_IDLE)},
    )
    srv.start()
    yield srv
    try:
        assert server_errors("multipart", srv.metrics_url) == 0
        assert "Traceback" not in srv.output(), srv.output()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def partner(server: Server) -> Partner:
    return server.new_partner()


def stored(data_dir: Path) -> tuple[int, int]:
    """(rows in the files table, blob files): what an upload leaves when it is kept."""
    with sqlite3.connect(f"file:{data_dir / 'berkas.db'}?mode=ro", uri=True) as db:
        (rows,) = db.execute("SELECT count(*) FROM files").fetchone()
    blobs = [p for p in (data_dir / "blobs").rglob("*") if p.is_file() and ".tmp" not in p.parts]
    return int(rows), len(blobs)


def send(port: int, token: str, vector: Vector) -> RawResponse | None:
    head = f"POST {FILE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
    if vector.content_type is not None:
        head += f"Content-Type: {vector.content_type}\r\n"
    body = vector.body
    if vector.framing in ("exact", "long", "short"):
        declared = {"exact": len(body), "long": len(body) + 1000, "short": len(body) - 300}
        head += f"Content-Length: {declared[vector.framing]}\r\n"
        raw = head.encode() + b"\r\n" + body
    else:
        head += "Transfer-Encoding: chunked\r\n"
        step = 1000
        chunks = [
            f"{len(body[i : i + step]):x}\r\n".encode() + body[i : i + step] + b"\r\n"
            for i in range(0, len(body), step)
        ]
        if vector.framing == "bad-chunked":
            # Half the chunks, then a chunk size that is not hexadecimal.
            chunks = [*chunks[: len(chunks) // 2], b"zz\r\n"]
        raw = head.encode() + b"\r\n" + b"".join(chunks) + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=BODY_IDLE + 30) as sock:
        # Refused before the end of the body: the answer is waiting all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        return read_response(sock)


@pytest.mark.parametrize("name", VECTORS)
def test_a_malformed_upload_is_a_precise_4xx_and_stores_nothing(
    server: Server, partner: Partner, name: str
) -> None:
    vector = VECTORS[name]
    before = stored(server.data_dir)
    response = send(server.port, partner.token, vector)
    assert response is not None, f"{name}: closed without an answer"
    tally("multipart", response.status)
    assert response.status == vector.status, (name, response)
    assert response.headers["content-type"] == "application/json", response
    error = response.json()["error"]
    assert set(error) == {"code", "message", "type"}, error
    assert error["code"] == vector.code, (name, error)
    assert error["type"] == "invalid_request_error", error
    assert error["message"], error
    assert wait_for(lambda: not spool_and_temp_files(server.data_dir), timeout=10)
    assert stored(server.data_dir) == before


def test_an_upload_abandoned_mid_body_is_counted_499_and_stores_nothing(
    server: Server, partner: Partner
) -> None:
    before = stored(server.data_dir)
    body = CATEGORY + part(b"file", JPEG + bytes(2 * MIB), filename=b"p.jpg") + END
    head = (
        f"POST {FILE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {partner.token}\r\n"
        f"Content-Type: {CT}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    counted = metric_statuses(server.metrics_url, FILE_PATH).get("499", 0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + body[: 3 * MIB // 2])
        assert wait_for(lambda: bool(spooled(server.data_dir)), timeout=10)
    assert wait_for(
        lambda: metric_statuses(server.metrics_url, FILE_PATH).get("499", 0) == counted + 1,
        timeout=10,
    )
    tally("multipart", 499)
    assert wait_for(lambda: not spool_and_temp_files(server.data_dir), timeout=10)
    assert stored(server.data_dir) == before


@pytest.mark.parametrize("framing", ["exact", "chunked"], ids=["Content-Length", "chunked"])
def test_the_same_upload_well_framed_is_stored_once(
    server: Server, partner: Partner, framing: str
) -> None:
    # The control: the corpus refuses the framing, not uploads as such.
    rows, blobs = stored(server.data_dir)
    response = send(server.port, partner.token, Vector(VALID, 200, "", framing=framing))
    assert response is not None
    tally("multipart", response.status)
    assert response.status == 200, response
    assert response.json()["category"] == "PHOTO_PROOF"
    assert stored(server.data_dir) == (rows + 1, blobs + 1)
