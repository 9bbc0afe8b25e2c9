"""/metrics tells an operator what the service did, not only which routes answered."""

from __future__ import annotations

import platform
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from berkas import __version__
from tests.support import samples
from tests.support.inprocess import InProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcess]:
    srv = InProcess(tmp_path / "data")
    yield srv
    srv.close()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of ``name`` with exactly these labels (0 if absent)."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) == labels:
            return float(match.group(2))
    return 0.0


def test_uploads_bytes_refusals_and_fetches_are_counted(server: InProcess) -> None:
    partner = server.partner()
    photo = samples.jpeg(seed=21)
    stored = partner.upload(photo, category="LOGO", code=None)
    assert stored.status_code == 200, stored.text
    refused = partner.upload(b"not an image at all", category="LOGO", code=None)
    assert refused.status_code == 415, refused.text
    odd = partner.upload(photo, category="NOT_A_CATEGORY", code=None)
    assert odd.status_code == 400, odd.text
    fetched = partner.upload(None, category="LOGO", code=None, file_url="http://10.0.0.1/x.jpg")
    assert fetched.status_code == 422, fetched.text
    forged = partner.upload(photo, token=partner.token[:-4] + "AAAA")
    assert forged.status_code == 401

    text = server.http.request("GET", "/metrics").text
    assert sample(text, "berkas_uploads_total", category="LOGO", outcome="stored") == 1
    assert sample(text, "berkas_uploads_total", category="LOGO", outcome="refused") == 2
    assert sample(text, "berkas_uploads_total", category="invalid", outcome="refused") == 1
    assert sample(text, "berkas_stored_bytes_total", category="LOGO") == len(photo)
    assert sample(text, "berkas_refusals_total", code="unsupported_type") == 1
    assert sample(text, "berkas_refusals_total", code="token_signature_invalid") == 1
    fetch_code = fetched.json()["error"]["code"]
    assert sample(text, "berkas_fetches_total", outcome=fetch_code) == 1
    assert "NOT_A_CATEGORY" not in text  # a caller's text never becomes a label


def test_build_and_process_metrics_are_exposed(server: InProcess) -> None:
    text = server.http.request("GET", "/metrics").text
    assert (
        sample(
            text,
            "berkas_build_info",
            version=__version__,
            python=platform.python_version(),
        )
        == 1
    )
    assert re.search(r"^process_resident_memory_bytes \d", text, re.M)
    assert re.search(r"^process_open_fds \d", text, re.M)
    assert "python_info{" in text


def test_docs_assets_are_counted_under_their_mount_not_as_unmatched(server: InProcess) -> None:
    assert server.http.request("GET", "/docs/assets/swagger-ui.css").status_code == 200
    assert server.http.request("GET", "/nowhere").status_code == 404
    text = server.http.request("GET", "/metrics").text
    labels = {"method": "GET", "route": "/docs/assets/{path:path}", "status": "200"}
    assert sample(text, "berkas_http_requests_total", **labels) == 1
    assert (
        sample(text, "berkas_http_requests_total", method="GET", route="unmatched", status="200")
        == 0
    )
    assert (
        sample(text, "berkas_http_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )


def test_sqlite_write_lock_waits_are_a_histogram(server: InProcess) -> None:
    # What `serve --workers N` costs on SQLite is read here: each write transaction's
    # wait for the file's one writer (README "Workers").
    before = server.http.request("GET", "/metrics").text
    stored = server.partner().upload(samples.jpeg(seed=22), category="LOGO", code=None)
    assert stored.status_code == 200, stored.text
    after = server.http.request("GET", "/metrics").text
    name = "berkas_db_write_lock_wait_seconds"
    count = re.compile(rf"^{name}_count (\S+)$", re.M)
    counted = [float(m.group(1)) for m in (count.search(before), count.search(after)) if m]
    assert len(counted) == 2
    assert counted[1] > counted[0]
    assert f'{name}_bucket{{le="+Inf"}} {counted[1]}' in after
    assert re.search(rf'^{name}_bucket{{le="0.0005"}} \S+$', after, re.M)


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_the_documentation_is_counted_under_its_own_route(server: InProcess, path: str) -> None:
    assert server.http.request("GET", path).status_code == 200
    text = server.http.request("GET", "/metrics").text
    labels = {"method": "GET", "status": "200"}
    assert sample(text, "berkas_http_requests_total", route=path, **labels) == 1
    assert sample(text, "berkas_http_requests_total", route="unmatched", **labels) == 0
