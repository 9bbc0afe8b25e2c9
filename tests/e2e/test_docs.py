"""The API documentation renders in a real browser with no request leaving the host.

Headless Chromium (Debian package ``chromium``) loads /docs and /redoc from a real
``berkas serve``; every host but the loopback address is made unresolvable, so a page
that still needs a CDN (FastAPI's default) renders no operations and fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server

OPERATIONS = ("Generate Token (DOKU)", "File Requirements (DOKU)", "Upload File (DOKU)")


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(data_dir=tmp_path_factory.mktemp("docs") / "data")
    server.start()
    yield server
    server.stop()


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing; `make system-deps` installs it")
        pytest.skip("chromium is not installed (Debian package chromium)")
    return found


def rendered(url: str, profile: Path) -> str:
    """The DOM of ``url`` after its scripts ran, as headless Chromium sees it offline."""
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",  # tests run as root, where the sandbox refuses to start
            "--disable-gpu",
            f"--user-data-dir={profile}",
            # Nothing but loopback resolves: a CDN script or font cannot load.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_swagger_ui_renders_every_partner_operation_offline(
    docs_server: Server, tmp_path: Path
) -> None:
    dom = rendered(f"{docs_server.url}/docs", tmp_path / "profile")
    for summary in OPERATIONS:
        assert summary in dom, f"{summary!r} not rendered:\n{dom[:3000]}"
    # Swagger UI's own markup, built by its script from /openapi.json.
    assert 'class="swagger-ui' in dom
    assert "cdn.jsdelivr.net" not in dom


def test_redoc_renders_every_partner_operation_offline(docs_server: Server, tmp_path: Path) -> None:
    dom = rendered(f"{docs_server.url}/redoc", tmp_path / "profile")
    for summary in OPERATIONS:
        assert summary in dom, f"{summary!r} not rendered:\n{dom[:3000]}"
    assert "fonts.googleapis.com" not in dom


def test_the_root_leads_to_the_docs_and_the_assets_are_served_locally(docs_server: Server) -> None:
    root = httpx.get(f"{docs_server.url}/", timeout=10)
    assert root.status_code == 307
    assert root.headers["location"] == "/docs"
    page = httpx.get(f"{docs_server.url}/docs", timeout=10).text
    assert "/docs/assets/swagger-ui-bundle.js" in page
    script = httpx.get(f"{docs_server.url}/docs/assets/swagger-ui-bundle.js", timeout=10)
    assert script.status_code == 200
    assert len(script.content) > 100_000
