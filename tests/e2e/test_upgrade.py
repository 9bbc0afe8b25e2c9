"""Upgrading documents an older release stored, on a real server, embedded and PostgreSQL
+ Ceph RGW (issue 20): they stay readable, ``secrets status`` counts them, ``berkas files
upgrade`` encrypts them beside the live server (the plaintext leaves the store) and their
fresh links give the same bytes, a second run does nothing, ``--strip`` removes the GPS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from berkas.core import envelope, metadata
from berkas.core.content import Kind
from tests.support import backstage, samples
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server

PHOTO = samples.gps_jpeg(seed=41)
PDF = samples.pdf(pages=2)
BIG = samples.big_jpeg(200_000, seed=42)  # several envelope chunks
NOTHING_DONE = "encrypted 0, stripped 0, checked 0, stamped 0, skipped 0, failed 0"


def _berkas(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", *args],
        env={**os.environ, "BERKAS_DATA_DIR": str(server.data_dir), **server.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _windows(data: bytes, width: int = 24, step: int = 997) -> list[bytes]:
    """Runs of the plaintext spread over it, none of which an envelope may contain."""
    return [data[i : i + width] for i in range(0, len(data) - width, step)]


@pytest.fixture(scope="module")
def older(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[tuple[Server, Partner, dict[str, dict[str, Any]]]]:
    """Documents as a release before encryption, stripping and retention stored them:
    in clear, the photo with its GPS, no retention date, never checked for metadata; then
    the server restarted as this release with its defaults."""
    data_dir = tmp_path_factory.mktemp("upgrade") / "data"
    then = Server(
        data_dir=data_dir,
        env={
            **backend_env,
            "BERKAS_ENCRYPT_AT_REST": "false",
            "BERKAS_KEEP_METADATA_CATEGORIES": "DOCUMENT",
        },
    )
    then.start()
    try:
        partner = then.new_partner()
        answers = {
            name: partner.upload(body, filename=filename).json()
            for name, body, filename in (
                ("photo", PHOTO, "p.jpg"),
                ("pdf", PDF, "d.pdf"),
                ("big", BIG, "b.jpg"),
            )
        }
        created = then.output()
    finally:
        then.stop()
    assert "created the master key" in created, created
    backstage.execute(
        then,
        "UPDATE files SET metadata_checked = FALSE, retained_until = NULL, metadata_removed = NULL",
    )
    now = Server(data_dir=data_dir, env=backend_env)
    now.start()
    yield now, Partner(now.http, partner.client_id, partner.secret_key), answers
    now.stop()


def _described(partner: Partner, answer: dict[str, Any]) -> dict[str, Any]:
    got = partner.http.request("GET", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())
    assert got.status_code == 200, got.text
    described: dict[str, Any] = got.json()
    return described


def _served(partner: Partner, answer: dict[str, Any]) -> bytes:
    got = httpx.get(_described(partner, answer)["link"], timeout=30)
    assert got.status_code == 200, got.text
    return got.content


def _status(server: Server) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(server.cli("secrets", "status"))
    return report


def _counts(server: Server) -> tuple[int, int, int]:
    report = _status(server)
    return (
        report["documents_not_encrypted"],
        report["documents_not_stripped"],
        report["documents_without_retention"],
    )


def test_older_documents_upgrade_beside_the_live_server(
    older: tuple[Server, Partner, dict[str, dict[str, Any]]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    server, partner, answers = older
    bodies = {"photo": PHOTO, "pdf": PDF, "big": BIG}
    # Readable as they were, and counted.
    for name, body in bodies.items():
        assert _served(partner, answers[name]) == body
    assert _counts(server) == (3, 3, 3)
    stored = backstage.stored_objects(server, request)
    assert any(PHOTO[200:240] in blob for blob in stored.values())
    link_before = _described(partner, answers["photo"])["link"]

    upgraded = _berkas(server, "files", "upgrade")

    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == (
        "encrypted 3, stripped 0, checked 0, stamped 3, skipped 0, failed 0"
    )
    # Piped: no progress bar on stderr (it holds what every write verb says there).
    assert "upgrading documents" not in upgraded.stderr
    assert "\r" not in upgraded.stderr
    # The plaintext has left the store; each object is an envelope.
    stored = backstage.stored_objects(server, request)
    assert len(stored) == 3
    for blob in stored.values():
        assert blob.startswith(envelope.MAGIC)
        for body in bodies.values():
            leaked = [window for window in _windows(body) if window in blob]
            assert not leaked, f"{len(leaked)} runs of a document are in the store"
    # Fresh links give the same bytes; the id, size and sha256 a partner holds stay true.
    for name, body in bodies.items():
        assert _served(partner, answers[name]) == body
        described = _described(partner, answers[name])
        assert described["sha256"] == samples.sha256(body)
        assert described["retained_until"] is not None
    # A link issued before names the old object: it works no more (GET /file gives one).
    assert httpx.get(link_before, timeout=30).status_code != 200
    assert _counts(server) == (0, 3, 0)
    events = [
        json.loads(line)
        for line in server.cli("audit", "export", "--client", partner.client_id).splitlines()
    ]
    trail = [(e["kind"], e["detail"]) for e in events if e["file_id"] == answers["photo"]["id"]]
    assert ("upgraded", "encrypted") in trail
    assert ("upgraded", "retention stamped: 365 days from upload") in trail

    again = _berkas(server, "files", "upgrade")

    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == NOTHING_DONE
    assert backstage.stored_objects(server, request) == stored

    stripped = _berkas(server, "files", "upgrade", "--strip")

    assert stripped.returncode == 0, stripped.stderr
    # The photo and the big JPEG lose what they carried (the big one carries nothing: checked).
    assert stripped.stdout.strip() == (
        "encrypted 0, stripped 1, checked 2, stamped 0, skipped 0, failed 0"
    )
    photo = _served(partner, answers["photo"])
    path = tmp_path / "served.jpg"
    path.write_bytes(photo)
    assert metadata.find_metadata(path, Kind.JPEG) == ()
    described = _described(partner, answers["photo"])
    assert "GPS" in described["metadata_removed"]
    assert described["sha256"] == samples.sha256(photo)
    assert _served(partner, answers["pdf"]) == PDF
    assert _served(partner, answers["big"]) == BIG
    assert _counts(server) == (0, 0, 0)
    assert len(backstage.stored_objects(server, request)) == 3
