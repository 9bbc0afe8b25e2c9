"""Upload by ``file_url`` against a real server, fetching only from loopback fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import samples
from tests.support.errors import assert_error
from tests.support.fixture_server import FixtureServer, endless, redirect, send
from tests.support.partner import Partner
from tests.support.server import Server

JPEG = samples.jpeg(120, 90, seed=7)
PNG = samples.png(50, 40, seed=3)
PDF = samples.pdf(pages=2)


@pytest.fixture(scope="module")
def origin() -> Iterator[FixtureServer]:
    with FixtureServer("127.0.0.1") as fixture:
        fixture.route("/ktp.jpg", send(200, JPEG, content_type="image/jpeg"))
        fixture.route("/logo.png", send(200, PNG, content_type="image/png"))
        fixture.route("/ktp.pdf", send(200, PDF, content_type="application/pdf"))
        fixture.route(
            "/page.html", send(200, b"<html><body>hi</body></html>", content_type="text/html")
        )
        fixture.route("/missing", send(404, b"secret upstream body", content_type="text/plain"))
        fixture.route("/forever", endless())
        fixture.route("/hop", redirect("http://127.0.0.1:1/elsewhere"))
        yield fixture


@pytest.fixture(scope="module")
def fetching_server(
    tmp_path_factory: pytest.TempPathFactory, origin: FixtureServer
) -> Iterator[Server]:
    server = Server(
        data_dir=tmp_path_factory.mktemp("fetch") / "data",
        env={
            # Our own fixture server is on loopback: trust exactly that network and port.
            "BERKAS_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
            "BERKAS_FETCH_ALLOW_PORTS": str(origin.port),
            "BERKAS_FETCH_TOTAL_TIMEOUT": "10",
        },
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fetcher_partner(fetching_server: Server) -> Partner:
    return fetching_server.new_partner()


@pytest.mark.parametrize(
    ("path", "category", "code", "content"),
    [
        ("/ktp.jpg", "DOCUMENT", "KTP", JPEG),
        ("/logo.png", "LOGO", None, PNG),
        ("/ktp.pdf", "DOCUMENT", "KTP", PDF),
    ],
)
def test_fetched_files_are_stored_and_downloadable(
    origin: FixtureServer,
    fetcher_partner: Partner,
    path: str,
    category: str,
    code: str | None,
    content: bytes,
) -> None:
    response = fetcher_partner.upload(None, category=category, code=code, file_url=origin.url(path))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sha256"] == samples.sha256(content)
    downloaded = httpx.get(body["link"])
    assert downloaded.content == content
    seen = [r for r in origin.requests if r.path == path]
    assert seen
    assert seen[-1].headers["user-agent"].startswith("berkas/")


def _refusal(response: httpx.Response, code: str) -> dict[str, str]:
    error = assert_error(response, 422, code)
    assert error["type"] == "invalid_request_error"
    return error


def test_upstream_404_is_fetch_failed_without_echoing_the_body(
    origin: FixtureServer, fetcher_partner: Partner
) -> None:
    error = _refusal(fetcher_partner.upload(None, file_url=origin.url("/missing")), "fetch_failed")
    assert "404" in error["message"]
    assert "secret upstream body" not in error["message"]


def test_fetched_html_is_unsupported_type(origin: FixtureServer, fetcher_partner: Partner) -> None:
    _refusal(fetcher_partner.upload(None, file_url=origin.url("/page.html")), "unsupported_type")


def test_endless_body_stops_at_the_cap(
    origin: FixtureServer, fetcher_partner: Partner, fetching_server: Server
) -> None:
    _refusal(
        fetcher_partner.upload(None, category="LOGO", code=None, file_url=origin.url("/forever")),
        "file_too_large",
    )
    assert list((fetching_server.data_dir / "spool").glob("*")) == []


def test_redirect_to_a_port_outside_the_policy_is_refused(
    origin: FixtureServer, fetcher_partner: Partner
) -> None:
    _refusal(fetcher_partner.upload(None, file_url=origin.url("/hop")), "url_port_not_allowed")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("file:///etc/passwd", "url_scheme_not_allowed"),
        ("gopher://127.0.0.1:70/", "url_scheme_not_allowed"),
        ("http://user:pass@127.0.0.1/", "url_credentials_not_allowed"),
        ("http://[::1]:{port}/", "address_not_allowed"),
        ("http://[::ffff:127.0.0.1]:{port}/", "address_not_allowed"),
        ("http://127.0.0.1:22/", "url_port_not_allowed"),
    ],
)
def test_hostile_urls_are_refused_through_the_api(
    origin: FixtureServer, fetcher_partner: Partner, url: str, code: str
) -> None:
    before = len(origin.connections)
    refused = fetcher_partner.upload(None, file_url=url.format(port=origin.port))
    _refusal(refused, code)
    assert len(origin.connections) == before


def test_url_upload_can_be_switched_off(tmp_path: Path, origin: FixtureServer) -> None:
    server = Server(data_dir=tmp_path / "data", env={"BERKAS_FETCH_ENABLED": "false"})
    server.start()
    try:
        response = server.new_partner().upload(None, file_url=origin.url("/ktp.jpg"))
        assert_error(response, 400, "url_upload_disabled")
    finally:
        server.stop()
