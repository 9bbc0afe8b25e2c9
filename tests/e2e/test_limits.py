"""Overload limits against a real ``berkas serve`` with low limits (README "Limits"):
per-client request and upload rates, the per-node cap on uploads in flight, and the
budget of refused ``file_url`` fetches. Waits follow the server's Retry-After."""

from __future__ import annotations

import http.client
import io
import os
import secrets
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support import samples
from tests.support.errors import assert_error
from tests.support.fixture_server import FixtureServer, send
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server

MIB = 1024 * 1024
PNG = samples.png(50, 40, seed=3)
JPEG = samples.jpeg(120, 90, seed=7)


def _retry_after(response: httpx.Response, most: int) -> int:
    """The Retry-After of a 429: whole seconds, at least 1, at most ``most``."""
    value = response.headers["retry-after"]
    assert value.isdigit(), value
    assert 1 <= int(value) <= most, value
    return int(value)


# -- request and upload rates ------------------------------------------------------------

# One token every 5 s, three at once: the bursts below finish well inside 5 s.
RATE = {
    "BERKAS_RATE_LIMIT_PER_SECOND": "0.2",
    "BERKAS_RATE_LIMIT_BURST": "3",
    "BERKAS_UPLOAD_RATE_PER_SECOND": "0.2",
    "BERKAS_UPLOAD_RATE_BURST": "1",
}


@pytest.fixture(scope="module")
def rate_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(data_dir=tmp_path_factory.mktemp("rates") / "data", env=RATE)
    server.start()
    yield server
    server.stop()


def test_a_burst_is_allowed_then_429_until_retry_after_and_other_clients_go_on(
    rate_server: Server,
) -> None:
    partner, other = rate_server.new_partner(), rate_server.new_partner()
    for _ in range(3):
        assert partner.get_token().status_code == 200

    request_id = str(uuid.uuid4())
    refused = partner.token_request({"grant_type": "client_credentials"}, request_id=request_id)
    error = assert_error(refused, 429, "rate_limited")
    assert error["type"] == "rate_limit_error"
    assert partner.client_id in error["message"]
    wait = _retry_after(refused, most=5)

    # Another partner has its own budget.
    assert other.get_token().status_code == 200

    time.sleep(wait + 0.2)
    # The refused Request-Id was not recorded: the retry is answered, not a 409 replay.
    retried = partner.token_request({"grant_type": "client_credentials"}, request_id=request_id)
    assert retried.status_code == 200, retried.text
    assert retried.json()["token"]


def test_uploads_have_their_own_rate(rate_server: Server) -> None:
    partner = rate_server.new_partner()
    token = partner.token  # the first of its three requests
    first = partner.upload(PNG, category="LOGO", code=None, token=token)
    assert first.status_code == 200, first.text
    refused = partner.upload(PNG, category="LOGO", code=None, token=token)
    assert_error(refused, 429, "upload_rate_limited")
    _retry_after(refused, most=5)


# -- uploads in flight on one node -----------------------------------------------------


def _noisy_jpeg() -> bytes:
    # Noise does not compress: several MB, so a pause leaves the body half sent.
    pixels = os.urandom(2000 * 1500 * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (2000, 1500), pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


class SlowUpload:
    """A POST /file over a raw socket whose body is sent when the test says so."""

    def __init__(self, server: Server, token: str, content: bytes) -> None:
        boundary = f"berkas-e2e-{secrets.token_hex(8)}"
        self.body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\n'
                f"PHOTO_PROOF\r\n--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + content
            + f"\r\n--{boundary}--\r\n".encode()
        )
        self.head = (
            f"POST {FILE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        self.sent = 0

    def send_head(self) -> None:
        self.sock.sendall(self.head)

    def send_body(self, upto: int | None = None) -> None:
        end = len(self.body) if upto is None else upto
        self.sock.sendall(self.body[self.sent : end])
        self.sent = end

    def response(self) -> httpx.Response:
        answer = http.client.HTTPResponse(self.sock)
        answer.begin()
        content = answer.read()
        self.sock.close()
        return httpx.Response(answer.status, headers=answer.getheaders(), content=content)

    def abort(self) -> None:
        self.sock.close()


def _spooled(server: Server) -> list[Path]:
    return sorted((server.data_dir / "spool").glob("upload-*.part"))


def _wait_for_spools(server: Server, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(_spooled(server)) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_spooled(server)) == count, f"{_spooled(server)}\n{server.output()}"


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        data_dir=tmp_path_factory.mktemp("capped") / "data",
        env={"BERKAS_MAX_CONCURRENT_UPLOADS": "2"},
    )
    server.start()
    yield server
    server.stop()


def test_one_upload_past_the_cap_is_refused_before_its_body_and_the_cap_frees_again(
    capped_server: Server,
) -> None:
    server = capped_server
    token = server.new_partner().token
    content = _noisy_jpeg()
    # Past the 1 MiB the server gathers before it parses (api/multipart.BATCH_BYTES), so
    # the file part has begun and its spool file exists while the upload pauses.
    cut = 2 * MIB
    assert len(content) > cut + MIB

    finishing, aborted = SlowUpload(server, token, content), SlowUpload(server, token, content)
    for upload in (finishing, aborted):
        upload.send_head()
        upload.send_body(cut)
    _wait_for_spools(server, 2)

    # The third sends its headers only: the answer comes without a byte of its body.
    extra = SlowUpload(server, token, content)
    extra.send_head()
    refused = extra.response()
    assert_error(refused, 429, "too_many_uploads")
    assert _retry_after(refused, most=5) == 1
    assert len(_spooled(server)) == 2

    finishing.send_body()
    done = finishing.response()
    assert done.status_code == 200, done.text
    aborted.abort()  # the client goes away mid-body
    _wait_for_spools(server, 0)

    # Both slots are free again: two more uploads are taken at once, a third is not.
    again = [SlowUpload(server, token, content) for _ in range(2)]
    for upload in again:
        upload.send_head()
        upload.send_body(cut)
    _wait_for_spools(server, 2)
    extra = SlowUpload(server, token, content)
    extra.send_head()
    assert_error(extra.response(), 429, "too_many_uploads")
    for upload in again:
        upload.send_body()
        answer = upload.response()
        assert answer.status_code == 200, answer.text


# -- refused file_url fetches ------------------------------------------------------------


@pytest.fixture(scope="module")
def origin() -> Iterator[FixtureServer]:
    with FixtureServer("127.0.0.1") as fixture:
        fixture.route("/logo.png", send(200, PNG, content_type="image/png"))
        fixture.route("/page.html", send(200, b"<html></html>", content_type="text/html"))
        yield fixture


@pytest.fixture(scope="module")
def probed_server(
    tmp_path_factory: pytest.TempPathFactory, origin: FixtureServer
) -> Iterator[Server]:
    server = Server(
        data_dir=tmp_path_factory.mktemp("probed") / "data",
        env={
            # Loopback is trusted for the fixture origin only; 10.0.0.0/8 is not.
            "BERKAS_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
            "BERKAS_FETCH_ALLOW_PORTS": str(origin.port),
            "BERKAS_FETCH_REFUSAL_BURST": "2",
            "BERKAS_FETCH_REFUSALS_PER_HOUR": "1",
        },
    )
    server.start()
    yield server
    server.stop()


def _fetch(partner: Partner, url: str) -> httpx.Response:
    return partner.upload(None, category="LOGO", code=None, file_url=url)


def test_refused_fetches_use_up_a_budget_then_file_url_is_refused_without_a_fetch(
    probed_server: Server, origin: FixtureServer
) -> None:
    prober, other = probed_server.new_partner(), probed_server.new_partner()
    # Fetches that work, and a fetched page that is not an image, cost nothing.
    for _ in range(3):
        assert _fetch(prober, origin.url("/logo.png")).status_code == 200
    assert_error(_fetch(prober, origin.url("/page.html")), 422, "unsupported_type")

    assert_error(_fetch(prober, "http://127.0.0.1:1/admin"), 422, "url_port_not_allowed")
    assert_error(_fetch(prober, f"http://10.0.0.1:{origin.port}/"), 422, "address_not_allowed")

    connections = len(origin.connections)
    refused = _fetch(prober, origin.url("/logo.png"))
    error = assert_error(refused, 429, "fetch_budget_exhausted")
    assert "file" in error["message"]
    _retry_after(refused, most=3600)
    assert len(origin.connections) == connections  # nothing was fetched

    # The same partner can still send the document itself; another can still fetch.
    sent = prober.upload(JPEG, category="DOCUMENT", code="KTP")
    assert sent.status_code == 200, sent.text
    fetched = _fetch(other, origin.url("/logo.png"))
    assert fetched.status_code == 200, fetched.text
