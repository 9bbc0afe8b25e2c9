"""A full disk under a running embedded node (issue 9, defect 2): the data dir (SQLite
file, blobs, spool) on a tmpfs of its own, filled to the brim while the server runs.

An upload then answers 507 ``insufficient_storage`` in the envelope, naming no server
path; ``/readyz`` is 503 naming the cause; nothing partial is left (no spool or blob temp
file, no row); once space is freed the same process takes uploads again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import spool_and_temp_files
from tests.support import samples
from tests.support.errors import assert_error
from tests.support.server import Server
from tests.support.tmpfs import fill, small_disk


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_disk(tmp_path / "disk", 32) as mounted:
        yield mounted


def rows(data_dir: Path) -> int:
    uri = f"file:{data_dir / 'berkas.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as connection:
        (count,) = connection.execute("SELECT count(*) FROM files").fetchone()
    return int(count)


def blobs(data_dir: Path) -> list[Path]:
    root = data_dir / "blobs"
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]


def test_a_full_disk_is_507_and_readyz_503_until_space_is_freed(disk: Path) -> None:
    data_dir = disk / "data"
    server = Server(data_dir=data_dir)
    server.start()
    try:
        partner = server.new_partner()
        kept = partner.upload(samples.jpeg(seed=1), category="LOGO", code=None)
        assert kept.status_code == 200, kept.text
        token = partner.token

        filler = disk / "filler"
        fill(filler)
        fill(filler)  # again: whatever the server freed meanwhile (its chores write too)
        refused = partner.upload(samples.jpeg(seed=2), category="LOGO", code=None, token=token)
        error = assert_error(refused, 507, "insufficient_storage")
        assert error["type"] == "api_error"
        # No server path on the wire: not the data dir, nor any absolute path at all.
        assert str(disk) not in refused.text
        assert "/" not in error["message"]

        ready = httpx.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"] == {
            "database": "insufficient_storage",
            "storage": "insufficient_storage",
        }
        # A signed request that writes (the Request-Id record) is refused for the same
        # cause, not as an unreachable database; it may also still fit in SQLite's pages.
        again = partner.get_token()
        assert again.status_code in {200, 507}, again.text
        if again.status_code == 507:
            assert_error(again, 507, "insufficient_storage")
        # A link download writes its audit event first; refused, it must not claim that
        # "nothing was stored" (it was a read).
        read = httpx.get(kept.json()["link"], timeout=30)
        assert read.status_code in {200, 507}, read.text
        if read.status_code == 507:
            message = assert_error(read, 507, "insufficient_storage")["message"]
            assert "stored" not in message
            assert "not carried out" in message

        # Nothing partial: no spooled or temporary file, no row, no blob beyond the first.
        assert spool_and_temp_files(data_dir) == []
        assert rows(data_dir) == 1
        assert len(blobs(data_dir)) == 1

        filler.unlink()
        ready = httpx.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}
        stored = partner.upload(samples.jpeg(seed=3), category="LOGO", code=None, token=token)
        assert stored.status_code == 200, stored.text
        assert rows(data_dir) == 2
        assert spool_and_temp_files(data_dir) == []
        assert "Traceback" not in server.output()
    finally:
        server.stop()
