"""``berkas partner download`` when the bytes that arrive are not the ones stored.

The server is a scripted ``httpx.MockTransport`` (the CLI's one client factory is
patched to use it): its metadata reports one sha256 and its link serves other bytes,
as a corrupting proxy or disk would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from berkas.cli import partner_options
from berkas.cli.main import main
from berkas.client import BerkasClient

STORED = b"\x89PNG stored bytes"
FILE_ID = "DCM-0001-1732700000000"
LINK = "http://berkas.test/links/logo.png?signature=abc"


def fake_server(served: bytes) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/token"):
            return httpx.Response(200, json={"token": "header.payload.signature"})
        if path.endswith(f"/file/{FILE_ID}"):
            return httpx.Response(
                200,
                json={
                    "id": FILE_ID,
                    "category": "LOGO",
                    "code": None,
                    "content_type": "image/png",
                    "size": len(STORED),
                    "sha256": hashlib.sha256(STORED).hexdigest(),
                    "width": 1,
                    "height": 1,
                    "created_at": "2026-01-01T00:00:00Z",
                    "link": LINK,
                    "link_expires_at": None,
                },
            )
        if path == "/links/logo.png":
            return httpx.Response(200, content=served)
        return httpx.Response(404, json={"error": {"code": "x", "message": "x", "type": "x"}})

    return handle


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[[bytes], None]:
    def install(served: bytes) -> None:
        transport = httpx.MockTransport(fake_server(served))

        def new_client(
            base_url: str, client_id: str, secret_key: str, timeout: float, **_: Any
        ) -> Any:
            return BerkasClient(base_url, client_id, secret_key, transport=transport)

        monkeypatch.setattr(partner_options, "new_client", new_client)

    return install


def download(tmp_path: Path, *args: str) -> Result:
    env = {
        "BERKAS_CLIENT_ID": "BRN-0001-10791114622547",
        "BERKAS_CLIENT_SECRET": "SK-test",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    return CliRunner().invoke(main, ["partner", "download", FILE_ID, *args], env=env)


def test_a_corrupted_download_is_reported_and_not_kept(
    serve: Callable[[bytes], None], tmp_path: Path
) -> None:
    serve(b"\x89PNG altered bytes")
    target = tmp_path / "logo.png"

    result = download(tmp_path, "-o", str(target))

    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.startswith("checksum_mismatch: the 18 bytes received have sha256 ")
    assert f"but the server reported {hashlib.sha256(STORED).hexdigest()}" in result.stderr
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_corrupted_download_as_json(serve: Callable[[bytes], None], tmp_path: Path) -> None:
    serve(b"other")
    result = download(tmp_path, "-o", str(tmp_path / "logo.png"), "--json")
    assert result.exit_code == 4
    error = json.loads(result.stdout)["error"]
    assert (error["code"], error["type"]) == ("checksum_mismatch", "integrity_error")


def test_a_corrupted_download_to_stdout_still_fails(
    serve: Callable[[bytes], None], tmp_path: Path
) -> None:
    serve(b"other")
    result = download(tmp_path, "-o", "-")
    # The bytes already went out; the exit code and stderr say not to trust them.
    assert result.exit_code == 4
    assert result.stderr.startswith("checksum_mismatch: ")


def test_intact_bytes_pass(serve: Callable[[bytes], None], tmp_path: Path) -> None:
    serve(STORED)
    result = download(tmp_path, "-o", str(tmp_path / "logo.png"))
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["verified"] is True
    assert (tmp_path / "logo.png").read_bytes() == STORED


def test_an_output_in_a_missing_directory_is_named(
    serve: Callable[[bytes], None], tmp_path: Path
) -> None:
    serve(STORED)
    target = tmp_path / "missing" / "logo.png"
    result = download(tmp_path, "-o", str(target))
    assert result.exit_code == 2
    assert (
        result.stderr == f"output_unwritable: cannot write {target}: its directory does not exist\n"
    )
