"""Many uploads at once, and a kill -9 in the middle of them."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import spool_and_temp_files
from tests.support import samples
from tests.support.partner import PREFIX, Partner
from tests.support.server import Server


@pytest.mark.slow
def test_200_parallel_uploads_get_200_distinct_downloadable_ids(
    server: Server, partner: Partner
) -> None:
    token = partner.token
    # Distinct content per upload, so a mix-up between two uploads would show in the hash.
    files = [samples.jpeg(32, 24, seed=i) for i in range(200)]

    def upload(content: bytes) -> tuple[str, str]:
        response = partner.upload(content, category="PHOTO_PROOF", code=None, token=token)
        assert response.status_code == 200, response.text
        body = response.json()
        return body["id"], body["link"]

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(upload, files))

    ids = [i for i, _ in results]
    assert len(set(ids)) == 200
    with httpx.Client(timeout=30) as http:
        for (file_id, link), content in zip(results, files, strict=True):
            got = http.get(link)
            assert got.status_code == 200, file_id
            assert hashlib.sha256(got.content).hexdigest() == samples.sha256(content), file_id


@pytest.mark.slow
def test_kill_9_mid_upload_loses_nothing_acknowledged(tmp_path: Path) -> None:
    server = Server(data_dir=tmp_path / "data")
    server.start()
    partner = server.new_partner()
    token = partner.token
    payloads = [samples.jpeg(800, 600, seed=i) + b"" for i in range(60)]
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def upload(content: bytes) -> None:
        try:
            response = partner.upload(
                content, category="PHOTO_PROOF", code=None, token=token, timeout=20
            )
        except httpx.TransportError:
            return  # cut off by the kill: never acknowledged, so nothing is promised
        if response.status_code == 200:
            with lock:
                acknowledged[response.json()["id"]] = content
                if len(acknowledged) >= 8:
                    enough.set()

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(upload, p) for p in payloads]
        assert enough.wait(timeout=60), server.output()
        server.kill9()
        for future in futures:
            future.result()

    assert acknowledged
    server.start()
    try:
        assert spool_and_temp_files(server.data_dir) == []
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            for file_id, content in acknowledged.items():
                meta = http.get(f"{server.url}{PREFIX}/file/{file_id}")
                assert meta.status_code == 200, (file_id, meta.text)
                got = http.get(meta.json()["link"])
                assert got.content == content, file_id
        # Exactly the objects with a row are on disk (no orphan of an upload the kill cut
        # between blob and row), and each is whole: its bytes hash to what the row says.
        root = server.data_dir / "blobs"
        with closing(sqlite3.connect(server.data_dir / "berkas.db")) as db:
            rows = dict(db.execute("SELECT key, sha256 FROM files").fetchall())
        on_disk = {
            str(p.relative_to(root)): p
            for p in root.rglob("*")
            if p.is_file() and ".tmp" not in p.relative_to(root).parts
        }
        assert set(on_disk) == set(rows)
        for key, path in on_disk.items():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == rows[key], key
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def test_request_id_replay_survives_a_restart(tmp_path: Path) -> None:
    # A partner retrying across our restart must still get the first answer, not a second
    # token: replay records live in the database, not in the process.
    server = Server(data_dir=tmp_path / "data")
    server.start()
    try:
        partner = server.new_partner()
        body = json.dumps({"grant_type": "client_credentials", "valid_time": "10"}).encode()
        first = partner.signed("POST", f"{PREFIX}/token", body, request_id="across-restart-1")
        assert first.status_code == 200, first.text
        server.stop()
        server.start()
        again = partner.signed("POST", f"{PREFIX}/token", body, request_id="across-restart-1")
        assert again.status_code == 409, again.text
        assert again.content == first.content
    finally:
        server.stop()
