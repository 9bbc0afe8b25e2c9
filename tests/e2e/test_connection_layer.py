"""The connection layer of a real ``berkas serve`` (issue 9, defect 4): framing errors in
the envelope, slow clients cut, and a connection cap answered at once.

Before, httptools' framing errors were a plain-text 400, and a connection that sent half
a head, nothing at all, or a body that stalled stayed open for ever (slowloris, CWE-400),
a stalled upload holding its spool file the whole time.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import samples
from tests.support.errors import assert_error
from tests.support.http import (
    RawResponse,
    connection_answers,
    exchange,
    metric_statuses,
    multipart_body,
    read_response,
    spooled,
    wait_for,
)
from tests.support.partner import FILE_PATH, TOKEN_PATH
from tests.support.server import Server

TIMEOUT = 2  # every connection deadline of the server under test, in seconds
# A deadline is checked generously: a loaded machine may answer late, never early.
MARGIN = 15
LIMITS = {
    "BERKAS_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
    "BERKAS_BODY_IDLE_TIMEOUT_SECONDS": str(TIMEOUT),
    "BERKAS_KEEPALIVE_TIMEOUT_SECONDS": str(TIMEOUT),
}
TOKEN = TOKEN_PATH.encode()

# What llhttp refuses, each a way a client or an attacker gets HTTP/1.1 framing wrong
# (RFC 9112 sections 2-7); request smuggling's ambiguities among them (section 6.3).
MALFORMED = {
    "bad method": b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad version": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "non-ASCII target": b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
    "space in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    "space before the colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "header without colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
    "NUL in a value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    "obsolete line folding": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    "bare LF": b"GET /healthz HTTP/1.1\nHost: x\n\n",
    "Content-Length not a number": b"POST " + TOKEN + b" HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: abc\r\n\r\n",
    "two Content-Lengths": b"POST " + TOKEN + b" HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "Content-Length and chunked": b"POST " + TOKEN + b" HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunked not the last coding": b"POST " + TOKEN + b" HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "chunk size not hex": b"POST " + TOKEN + b" HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk size overflow": b"POST " + TOKEN + b" HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n",
    "chunk without CRLF": b"POST " + TOKEN + b" HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(data_dir=tmp_path_factory.mktemp("connections") / "data", env=LIMITS)
    srv.start()
    yield srv
    assert "Traceback" not in srv.output(), srv.output()
    srv.stop()


def assert_envelope(response: RawResponse | None, status: int, code: str) -> None:
    """A raw answer carrying the error envelope, and closing the connection."""
    assert response is not None, "closed without an answer"
    assert response.status == status, response
    assert response.headers["content-type"] == "application/json", response
    assert response.headers["connection"] == "close", response
    error = response.json()["error"]
    assert set(error) == {"code", "message", "type"}, error
    assert error["code"] == code, error
    assert error["message"], error


def closed_by_server(sock: socket.socket, within: float) -> tuple[RawResponse | None, float]:
    """Wait (at most ``within`` s) for the server to answer and close; the answer (or
    None) and how long it took. Fails if the connection is still open by then."""
    started = time.monotonic()
    sock.settimeout(within)
    try:
        response = read_response(sock)
        rest = sock.recv(1)
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {within} s")
    assert rest == b"", rest
    return response, time.monotonic() - started


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_request_that_does_not_parse_is_400_malformed_http(server: Server, raw: bytes) -> None:
    counted = connection_answers(server.metrics_url).get(("400", "malformed_http"), 0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw)
        response, _ = closed_by_server(sock, MARGIN)
    assert_envelope(response, 400, "malformed_http")
    assert "HTTP/1.1" in response.json()["error"]["message"]  # type: ignore[union-attr]
    # An operator sees them in /metrics, although no route ever ran.
    assert connection_answers(server.metrics_url)[("400", "malformed_http")] == counted + 1


def test_a_head_over_64_kb_is_431_before_it_is_all_read(server: Server) -> None:
    header = b"X-Padding: " + b"a" * (1024 * 1024) + b"\r\n"
    response = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
    assert_envelope(response, 431, "headers_too_large")


def test_half_a_head_is_408_after_the_header_timeout(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        response, took = closed_by_server(sock, TIMEOUT + MARGIN)
    assert_envelope(response, 408, "request_timeout")
    assert took >= TIMEOUT - 0.5  # the deadline, not a refusal on sight


def test_a_head_dribbled_a_byte_at_a_time_is_cut_all_the_same(server: Server) -> None:
    # Each byte arrives well within the timeout: only a deadline on the whole head stops it.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        while time.monotonic() - started < TIMEOUT + MARGIN and not answer_waiting(sock):
            with contextlib.suppress(OSError):  # the server may close between two bytes
                sock.sendall(b"X")
            time.sleep(0.2)
        response, _ = closed_by_server(sock, MARGIN)
    assert_envelope(response, 408, "request_timeout")


def answer_waiting(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except BlockingIOError:
        return False


def test_a_connection_that_sends_nothing_is_closed_unanswered(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        response, took = closed_by_server(sock, TIMEOUT + MARGIN)
    assert response is None
    assert took >= TIMEOUT - 0.5
    assert connection_answers(server.metrics_url)[("none", "header_timeout")] >= 1


def test_an_idle_keep_alive_connection_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_response(sock)
        assert first is not None
        assert first.status == 200
        assert "connection" not in first.headers  # kept alive
        response, _ = closed_by_server(sock, TIMEOUT + MARGIN)
    assert response is None


def test_a_signed_request_whose_body_stalls_is_408(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            b"POST " + TOKEN + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"grant_type"'
        )
        response, _ = closed_by_server(sock, TIMEOUT + MARGIN)
    assert_envelope(response, 408, "request_timeout")


def test_an_upload_whose_body_stalls_is_408_and_its_spool_is_removed(server: Server) -> None:
    partner = server.new_partner()
    # Past the 1 MiB the reader gathers before parsing, so the file part is being spooled.
    content = samples.jpeg(seed=4) + bytes(2 * 1024 * 1024)
    body, content_type = multipart_body(
        [("category", None, b"PHOTO_PROOF"), ("file", "photo.jpg", content)]
    )
    assert len(body) > 1_200_000
    before = metric_statuses(server.metrics_url, FILE_PATH).get("408", 0)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            f"POST {FILE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {partner.token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:1_200_000]
        )
        assert wait_for(lambda: bool(spooled(server.data_dir)), timeout=MARGIN)
        response, _ = closed_by_server(sock, TIMEOUT + MARGIN)
    assert_envelope(response, 408, "request_timeout")
    assert wait_for(lambda: not spooled(server.data_dir), timeout=MARGIN)
    assert metric_statuses(server.metrics_url, FILE_PATH).get("408", 0) == before + 1


def test_a_malformed_chunked_upload_is_400_and_leaves_no_spool(server: Server) -> None:
    partner = server.new_partner()
    body, content_type = multipart_body(
        [
            ("category", None, b"PHOTO_PROOF"),
            ("file", "p.jpg", samples.jpeg() + bytes(2 * 1024 * 1024)),
        ]
    )
    chunk = body[:1_100_000]
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            f"POST {FILE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {partner.token}\r\n"
            f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + f"{len(chunk):x}\r\n".encode()
            + chunk
            + b"\r\nnot-hex\r\n"
        )
        response, _ = closed_by_server(sock, MARGIN)
    assert_envelope(response, 400, "malformed_http")
    assert wait_for(lambda: not spooled(server.data_dir), timeout=MARGIN)
    # What the client was told is what /metrics counts: not a 499, never a 5xx.
    assert wait_for(lambda: "400" in metric_statuses(server.metrics_url, FILE_PATH), timeout=MARGIN)
    assert not any(s.startswith("5") for s in metric_statuses(server.metrics_url, FILE_PATH))


def test_past_the_connection_cap_a_new_connection_is_503_at_once(tmp_path: Path) -> None:
    # Deadlines long enough that the held connections outlive the test.
    srv = Server(
        data_dir=tmp_path / "data",
        env={"BERKAS_MAX_CONNECTIONS": "4", "BERKAS_HEADER_TIMEOUT_SECONDS": "60"},
    )
    srv.start()
    try:
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(4)]
        try:
            assert wait_for(lambda: busy(srv) is not None, timeout=MARGIN)
            response = busy(srv)
            assert_envelope(response, 503, "server_busy")
            assert response.headers["retry-after"] == "1"  # type: ignore[union-attr]
            # Counted (the cap leaves room for nothing, so /metrics is asked once freed).
            refused = sum(1 for _ in range(3) if busy(srv) is not None) + 1
        finally:
            for sock in held:
                sock.close()
        # Freed: served again.
        assert wait_for(
            lambda: httpx.get(f"{srv.url}/healthz", timeout=10).status_code == 200,
            timeout=MARGIN,
        )
        assert connection_answers(srv.metrics_url)[("503", "server_busy")] >= refused
        log = srv.output()
        assert len(re.findall("connection cap reached", log)) == 1, log
    finally:
        srv.stop()


def busy(srv: Server) -> RawResponse | None:
    response = exchange(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    return response if response is not None and response.status == 503 else None


def test_a_normal_upload_is_answered_as_before(server: Server) -> None:
    partner = server.new_partner()
    done = partner.upload(samples.jpeg(seed=5), category="PHOTO_PROOF", code=None)
    assert done.status_code == 200, done.text
    refused = partner.post_file(b"not multipart", "text/plain")
    assert_error(refused, 400, "multipart_required")
