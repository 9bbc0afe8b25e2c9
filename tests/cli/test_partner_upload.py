"""``berkas partner upload``'s output: ``--dry-run``, and the notes on what was stripped
or is a duplicate.

The server is a scripted ``httpx.MockTransport`` (the CLI's one client factory is
patched to use it) that records each POST /file and answers as berkas does: a dry run
with ``"dry_run": true`` and no id, an upload with its id and link. stderr counts as a
terminal (the notes are for a person) unless a test says it is a pipe.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from berkas.cli import partner_options, progress
from berkas.cli.main import main
from berkas.client import BerkasClient

FIRST = "CNT-0001-1732700000000"
SHA256 = "5d" * 32
CHECKED = {
    "dry_run": True,
    "category": "PHOTO_PROOF",
    "code": None,
    "content_type": "image/jpeg",
    "size": 5120,
    "sha256": SHA256,
    "width": 96,
    "height": 64,
    "metadata_removed": ["EXIF", "GPS"],
    "reencoded": False,
    "duplicate_of": FIRST,
}
STORED = {
    "id": "CNT-0001-1732700000001",
    "link": "http://berkas.test/links/x?signature=abc",
    "category": "PHOTO_PROOF",
    "code": None,
    "content_type": "image/jpeg",
    "size": 5120,
    "sha256": SHA256,
    "link_expires_at": "2026-01-01T01:00:00Z",
    "metadata_removed": ["EXIF", "GPS"],
    "duplicate_of": FIRST,
}


class FakeServer:
    """Answers token and POST /file; ``posts`` keeps each upload request as sent."""

    def __init__(self) -> None:
        self.posts: list[httpx.Request] = []
        self.stored: dict[str, Any] = STORED
        self.refuse = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"token": "header.payload.signature"})
        request.read()
        self.posts.append(request)
        if self.refuse:
            error = {"code": "content_unsupported", "message": "not an image", "type": "x"}
            return httpx.Response(415, json={"error": error})
        if request.headers.get("berkas-dry-run") == "true":
            return httpx.Response(200, json=CHECKED)
        return httpx.Response(200, json=self.stored)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer()
    transport = httpx.MockTransport(fake)

    def new_client(base_url: str, client_id: str, secret_key: str, timeout: float, **_: Any) -> Any:
        return BerkasClient(base_url, client_id, secret_key, transport=transport)

    monkeypatch.setattr(partner_options, "new_client", new_client)
    return fake


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    def stderr_is_a_terminal(tty: bool) -> None:
        monkeypatch.setattr(progress, "_isatty", lambda stream: tty)

    stderr_is_a_terminal(True)
    return stderr_is_a_terminal


@pytest.fixture
def upload(tmp_path: Path, terminal: Callable[[bool], None]) -> Callable[..., Result]:
    photo = tmp_path / "shop.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0 a photo")
    env = {
        "BERKAS_CLIENT_ID": "BRN-0001-10791114622547",
        "BERKAS_CLIENT_SECRET": "SK-test",
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }

    def run(*args: str, source: str | None = str(photo)) -> Result:
        argv = ["partner", "upload", "--category", "PHOTO_PROOF", *args]
        return CliRunner().invoke(main, argv if source is None else [*argv, source], env=env)

    return run


def notes(result: Result) -> list[str]:
    """stderr's lines less the progress bar's (each drawn after a carriage return)."""
    return [line for line in result.stderr.split("\n") if line and "\r" not in line]


def test_dry_run_prints_what_would_be_stored(
    server: FakeServer, upload: Callable[..., Result]
) -> None:
    result = upload("--dry-run", "--request-id", "shop-1")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == CHECKED
    assert notes(result) == [
        "dry run: every check passed; nothing was stored",
        "metadata to remove before storing: EXIF, GPS",
        f"duplicate of {FIRST}: same bytes in PHOTO_PROOF (it would be stored all the same)",
    ]
    (sent,) = server.posts
    assert sent.headers["berkas-dry-run"] == "true"
    # A dry run keeps nothing to make idempotent: the Request-Id is not sent.
    assert "request-id" not in sent.headers
    assert b'name="file"; filename="shop.jpg"' in sent.content


def test_dry_run_by_url_sends_the_url(server: FakeServer, upload: Callable[..., Result]) -> None:
    result = upload("--dry-run", "--url", "https://cdn.example.com/shop.jpg", source=None)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["dry_run"] is True
    (sent,) = server.posts
    assert sent.headers["berkas-dry-run"] == "true"
    assert b'name="file_url"\r\n\r\nhttps://cdn.example.com/shop.jpg' in sent.content


def test_a_refused_dry_run_is_the_uploads_error(
    server: FakeServer, upload: Callable[..., Result], terminal: Callable[[bool], None]
) -> None:
    server.refuse = True
    terminal(False)
    result = upload("--dry-run")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "content_unsupported: not an image\n"


def test_an_upload_notes_stripped_metadata_and_a_duplicate(
    server: FakeServer, upload: Callable[..., Result]
) -> None:
    result = upload()

    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert "dry_run" not in printed
    assert (printed["id"], printed["metadata_removed"]) == (STORED["id"], ["EXIF", "GPS"])
    assert notes(result) == [
        "metadata removed before storing: EXIF, GPS",
        f"duplicate of {FIRST}: same bytes in PHOTO_PROOF (stored all the same)",
    ]
    assert "berkas-dry-run" not in server.posts[0].headers


def test_an_upload_with_nothing_to_note_prints_only_the_json(
    server: FakeServer, upload: Callable[..., Result]
) -> None:
    server.stored = {**STORED, "metadata_removed": [], "duplicate_of": None}
    result = upload()
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["id"] == STORED["id"]
    assert notes(result) == []
    assert result.stderr.startswith("\rupload shop.jpg [")  # the bar alone


@pytest.mark.parametrize("where", ["--quiet", "a pipe"])
def test_quiet_or_a_pipe_keeps_stderr_for_errors(
    server: FakeServer,
    upload: Callable[..., Result],
    terminal: Callable[[bool], None],
    where: str,
) -> None:
    terminal(where != "a pipe")
    quiet = ("-q",) if where == "--quiet" else ()
    for args in ((), ("--dry-run",)):
        result = upload(*quiet, *args)
        assert result.exit_code == 0, result.stderr
        assert result.stderr == ""
        # The JSON says it all the same.
        printed = json.loads(result.stdout)
        assert (printed["metadata_removed"], printed["duplicate_of"]) == (["EXIF", "GPS"], FIRST)
