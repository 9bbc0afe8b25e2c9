"""Retention on two `berkas serve` nodes sharing PostgreSQL and Ceph RGW (issue 11):
documents past their retention are removed by exactly one node, rows, bytes and links,
while a document on legal hold and one with a longer retention stay."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.e2e import test_two_nodes
from tests.e2e.test_two_nodes import node, start_together
from tests.support import samples
from tests.support.partner import FILE_PATH, Partner
from tests.support.rgw import Rgw
from tests.support.server import Server

# LOGO documents live about 8.6 seconds here (long enough to upload seven and put one on
# hold on a loaded machine); DOCUMENT keeps the default (365 days).
RETENTION = {
    "BERKAS_RETENTION_DAYS_BY_CATEGORY": "LOGO=0.0001",
    "BERKAS_HOUSEKEEPING_INTERVAL_SECONDS": "1",
}


# The fleet fixture of the two-node suite: a fresh database and bucket per test.
fleet = test_two_nodes.fleet


@pytest.fixture
def nodes(tmp_path: Path, fleet: dict[str, str]) -> Iterator[tuple[Server, Server]]:
    env = {**fleet, **RETENTION}
    pair = (node(tmp_path, env, "a", "1"), node(tmp_path, env, "b", "2"))
    start_together(*pair)
    yield pair
    for server in pair:
        server.stop()


def _get(partner: Partner, path: str) -> httpx.Response:
    return partner.http.request("GET", f"{FILE_PATH}/{path}", headers=partner.auth())


def test_expired_documents_are_removed_by_exactly_one_node(
    nodes: tuple[Server, Server], fleet: dict[str, str], rgw: Rgw
) -> None:
    a, b = nodes
    partner = a.new_partner()
    on_b = Partner(b.http, partner.client_id, partner.secret_key)
    logos = [
        (on_b if n % 2 else partner).upload(samples.png(seed=n), category="LOGO", code=None).json()
        for n in range(6)
    ]
    held = partner.upload(samples.png(seed=50), category="LOGO", code=None).json()
    a.cli("files", "hold", held["id"])
    kept = partner.upload(samples.jpeg(seed=51)).json()
    described = _get(partner, logos[-1]["id"])
    assert described.status_code == 200, "expired before the test could look: raise LOGO="
    assert described.json()["retained_until"] is not None
    assert _get(partner, held["id"]).json()["legal_hold"] is True

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(_get(partner, f["id"]).status_code == 404 for f in logos):
            break
        time.sleep(0.5)

    for stored in logos:
        assert _get(partner, stored["id"]).status_code == 404
        assert httpx.get(stored["link"], timeout=30).status_code == 404
    expiries = [
        event
        for stored in logos
        for event in _get(partner, f"{stored['id']}/events").json()["events"]
        if event["kind"] == "retention_expired"
    ]
    assert len(expiries) == len(logos)  # each removed once
    assert len({event["detail"] for event in expiries}) == 1  # by one node
    bucket = urlsplit(fleet["BERKAS_STORAGE_URL"]).netloc
    pages = rgw.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    names = {item["Key"] for page in pages for item in page.get("Contents", [])}
    for stored in logos:
        tail = unquote(urlsplit(stored["link"]).path).rsplit("/", 1)[-1]
        assert not any(name.endswith(tail) for name in names)
    # On hold: past its retention, still served. Longer retention: untouched.
    for stored, content in ((held, samples.png(seed=50)), (kept, samples.jpeg(seed=51))):
        fresh = _get(partner, stored["id"])
        assert fresh.status_code == 200, fresh.text
        assert httpx.get(fresh.json()["link"], timeout=30).content == content
    # Released, the held one goes at the next round.
    a.cli("files", "release", held["id"])
    deadline = time.monotonic() + 30
    while _get(partner, held["id"]).status_code != 404 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _get(partner, held["id"]).status_code == 404
    for server in nodes:
        assert "Traceback" not in server.output()


def test_the_embedded_default_expires_documents_too(tmp_path: Path) -> None:
    # One node on SQLite and local disk: the same lease (it is the only holder), the
    # same removal of row, bytes and links, and the held document kept.
    server = Server(data_dir=tmp_path / "data", env=RETENTION)
    server.start()
    try:
        partner = server.new_partner()
        logo = partner.upload(samples.png(seed=60), category="LOGO", code=None).json()
        held = partner.upload(samples.png(seed=61), category="LOGO", code=None).json()
        server.cli("files", "hold", held["id"])
        deadline = time.monotonic() + 60
        while _get(partner, logo["id"]).status_code != 404 and time.monotonic() < deadline:
            time.sleep(0.5)

        assert _get(partner, logo["id"]).status_code == 404
        assert httpx.get(logo["link"], timeout=30).status_code == 404
        tail = unquote(urlsplit(logo["link"]).path).rsplit("/", 1)[-1]
        assert not list((server.data_dir / "blobs").rglob(tail))
        kinds = [e["kind"] for e in _get(partner, f"{logo['id']}/events").json()["events"]]
        # uploaded, then a described for each poll above, then its one expiry.
        assert (kinds[0], kinds[-1]) == ("uploaded", "retention_expired")
        assert kinds.count("retention_expired") == 1
        assert _get(partner, held["id"]).json()["legal_hold"] is True
        assert "Traceback" not in server.output()
    finally:
        server.stop()
