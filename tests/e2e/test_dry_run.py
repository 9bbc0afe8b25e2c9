"""``Berkas-Dry-Run: true`` and ``duplicate_of`` on a real server, embedded and PostgreSQL +
Ceph RGW (issue 11): a dry run answers what an upload would store and stores nothing; a
refused file is refused the same way; an upload of bytes already stored names the first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import backstage, samples
from tests.support.errors import assert_error
from tests.support.fixture_server import FixtureServer, send
from tests.support.partner import Partner
from tests.support.server import Server

DRY = {"Berkas-Dry-Run": "true"}
PHOTO = samples.gps_jpeg(seed=21)


@pytest.fixture(scope="module")
def origin() -> Iterator[FixtureServer]:
    with FixtureServer("127.0.0.1") as fixture:
        fixture.route("/photo.jpg", send(200, PHOTO, content_type="image/jpeg"))
        fixture.route("/page.html", send(200, b"<html>hi</html>", content_type="text/html"))
        yield fixture


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str], origin: FixtureServer
) -> Iterator[Server]:
    srv = Server(
        data_dir=tmp_path_factory.mktemp("dry-run") / "data",
        env={
            "BERKAS_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",
            "BERKAS_FETCH_ALLOW_PORTS": str(origin.port),
            **backend_env,
        },
    )
    srv.start()
    yield srv
    srv.stop()


def _kept(server: Server, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Everything an upload could leave behind: objects, rows, events, spool files."""
    return {
        "objects": sorted(backstage.stored_names(server, request)),
        "files": backstage.query(server, "SELECT id FROM files ORDER BY id"),
        "events": backstage.query(server, "SELECT count(*) FROM file_events"),
        "keys": backstage.query(server, "SELECT count(*) FROM pending_blobs"),
        "spool": sorted(p.name for p in (server.data_dir / "spool").glob("*")),
    }


def test_a_dry_run_answers_what_would_be_stored_and_stores_nothing(
    server: Server, partner: Partner, request: pytest.FixtureRequest
) -> None:
    before = _kept(server, request)

    dry = partner.upload(PHOTO, headers=DRY)

    assert dry.status_code == 200, dry.text
    answer = dry.json()
    assert _kept(server, request) == before
    assert "id" not in answer
    assert "link" not in answer
    assert answer["dry_run"] is True
    assert answer["metadata_removed"] == ["COMMENT", "EXIF", "GPS"]
    assert (answer["content_type"], answer["width"], answer["height"]) == ("image/jpeg", 96, 64)
    assert answer["duplicate_of"] is None
    # The same upload for real stores exactly what the dry run said.
    stored = partner.upload(PHOTO).json()
    for name in ("size", "sha256", "content_type", "metadata_removed", "category", "code"):
        assert stored[name] == answer[name], name


def test_a_dry_run_by_url_fetches_checks_and_stores_nothing(
    server: Server, partner: Partner, origin: FixtureServer, request: pytest.FixtureRequest
) -> None:
    before = _kept(server, request)

    dry = partner.upload(None, file_url=origin.url("/photo.jpg"), headers=DRY)
    refused = partner.upload(None, file_url=origin.url("/page.html"), headers=DRY)

    assert dry.status_code == 200, dry.text
    assert dry.json()["metadata_removed"] == ["COMMENT", "EXIF", "GPS"]
    assert_error(refused, 422, "unsupported_type")
    assert _kept(server, request) == before


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (samples.jpeg(seed=22)[:300], 415, "image_truncated"),
        (b"<html><body>not a KTP</body></html>", 415, "unsupported_type"),
        (b"", 400, "empty_file"),
    ],
    ids=["truncated", "html", "empty"],
)
def test_a_dry_run_refuses_what_an_upload_refuses(
    server: Server,
    partner: Partner,
    request: pytest.FixtureRequest,
    content: bytes,
    status: int,
    code: str,
) -> None:
    before = _kept(server, request)

    dry = partner.upload(content, headers=DRY)
    real = partner.upload(content)

    assert_error(dry, status, code)
    assert dry.json()["error"] == real.json()["error"]
    assert _kept(server, request) == before


def test_a_dry_run_reserves_no_idempotency_key(server: Server, partner: Partner) -> None:
    key = {"Idempotency-Key": "dry-run-then-real-7"}

    dry = partner.upload(samples.jpeg(seed=23), headers={**DRY, **key})
    real = partner.upload(samples.jpeg(seed=24), headers=key)

    assert dry.status_code == real.status_code == 200, real.text
    # Had the dry run taken the key, different content would be a 409 key reuse.
    assert "Idempotent-Replayed" not in real.headers
    assert real.json()["sha256"] == samples.sha256(samples.jpeg(seed=24))


def test_an_unreadable_dry_run_header_is_refused(server: Server, partner: Partner) -> None:
    refused = partner.upload(samples.jpeg(seed=25), headers={"Berkas-Dry-Run": "yes"})

    assert_error(refused, 400, "invalid_dry_run")


def test_the_same_bytes_again_name_the_first_file(server: Server, partner: Partner) -> None:
    scan = samples.jpeg(seed=26)
    first = partner.upload(scan).json()

    again = partner.upload(scan).json()
    dry = partner.upload(scan, headers=DRY).json()
    elsewhere = partner.upload(scan, category="PHOTO_PROOF", code=None).json()
    stranger = server.new_partner().upload(scan).json()

    assert first["duplicate_of"] is None
    assert again["duplicate_of"] == dry["duplicate_of"] == first["id"]
    assert again["id"] != first["id"]  # stored all the same: the partner decides
    assert elsewhere["duplicate_of"] is None  # another category
    assert stranger["duplicate_of"] is None  # another partner's files are not seen


def test_photos_that_differ_only_in_metadata_are_duplicates(
    server: Server, partner: Partner
) -> None:
    # What is stored is the stripped photo: the same picture shot with another comment
    # or position is the same document.
    photo = samples.gps_jpeg(seed=27)
    plain = partner.upload(photo, category="LOGO", code=None).json()
    # The same pixels, losslessly: only the comment differs (same length, same segment).
    retagged = photo.replace(b"Menteng", b"Kemang!")
    assert retagged != photo

    again = partner.upload(retagged, category="LOGO", code=None).json()

    assert again["duplicate_of"] == plain["id"]
