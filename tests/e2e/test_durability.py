"""Many uploads at once, and a kill -9 in the middle of them (issue 9), on each backend."""

from __future__ import annotations

import hashlib
import io
import json
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from PIL import Image

from bench.wrk import MULTIPART_TYPE, multipart
from tests.e2e.conftest import BACKENDS, spool_and_temp_files
from tests.support import samples
from tests.support.partner import FILE_PATH, PREFIX, Partner
from tests.support.postgres import fresh_database
from tests.support.rgw import Rgw
from tests.support.server import Server
from tests.support.vectors import server_errors, tally


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


@dataclass
class CrashSite:
    """A server to kill, and what it keeps behind its back: rows and stored blobs."""

    server: Server
    # Every files row, by blob key: (id, sha256), read straight from the database.
    rows: Callable[[], dict[str, tuple[str, str]]]
    # Every blob key in the store (local blob dir or bucket), read straight from it.
    blobs: Callable[[], set[str]]


@pytest.fixture(params=BACKENDS)
def crash_site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CrashSite]:
    """A fresh data dir (and, scaled out, a fresh database and bucket) for one kill -9."""
    data_dir = tmp_path / "data"
    if request.param == "embedded":
        server = Server(data_dir=data_dir)
        yield CrashSite(
            server, rows=lambda: _sqlite_rows(data_dir), blobs=lambda: _local_keys(data_dir)
        )
        server.stop()
        return
    cluster: str = request.getfixturevalue("e2e_postgres")
    gateway: Rgw = request.getfixturevalue("rgw")
    url = fresh_database(cluster, "e2e_crash_kill_9")
    with gateway.bucket() as bucket:
        env = {
            "BERKAS_DATABASE_URL": url,
            "BERKAS_STORAGE_URL": f"s3://{bucket}/crash",
            **gateway.env,
        }
        server = Server(data_dir=data_dir, env=env)
        yield CrashSite(
            server,
            rows=lambda: _postgres_rows(url),
            blobs=lambda: _bucket_keys(gateway, bucket, "crash/"),
        )
        server.stop()


def _sqlite_rows(data_dir: Path) -> dict[str, tuple[str, str]]:
    with closing(sqlite3.connect(data_dir / "berkas.db")) as db:
        return {key: (i, h) for i, key, h in db.execute("SELECT id, key, sha256 FROM files")}


def _postgres_rows(url: str) -> dict[str, tuple[str, str]]:
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            found = connection.execute(sqlalchemy.text("SELECT id, key, sha256 FROM files"))
            return {key: (i, h) for i, key, h in found}
    finally:
        engine.dispose()


def _local_keys(data_dir: Path) -> set[str]:
    root = data_dir / "blobs"
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and ".tmp" not in p.relative_to(root).parts
    }


def _bucket_keys(gateway: Rgw, bucket: str, prefix: str) -> set[str]:
    pages = gateway.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    names = [item["Key"] for page in pages for item in page.get("Contents", [])]
    assert all(name.startswith(prefix) for name in names), names
    return {name.removeprefix(prefix) for name in names}


def _noisy_png(seed: int, side: int = 512) -> bytes:
    # ~0.8 MB that does not compress: big enough that a torn write would show.
    pixels = random.Random(seed).randbytes(side * side * 3)  # noqa: S311 - test bytes
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


IN_FLIGHT = 100  # uploads on the wire at once, from as many partner threads
TRICKLING = 20  # of them, sent half and held until the kill: cut off mid-body for sure
ACKNOWLEDGED_BEFORE_KILL = 40


@pytest.mark.slow
def test_kill_9_mid_upload_loses_nothing_acknowledged(crash_site: CrashSite) -> None:
    server = crash_site.server
    server.start()
    partner = server.new_partner()
    token = partner.token
    # Distinct content throughout, so a mix-up between two uploads would show in a hash:
    # every third a noisy ~0.8 MB PNG, the rest small JPEGs.
    queue = [
        _noisy_png(i) if i % 3 == 0 else samples.jpeg(800, 600, seed=i)
        for i in range(TRICKLING, 300)
    ]
    held = [_noisy_png(i) for i in range(TRICKLING)]
    sent = {samples.sha256(content) for content in queue + held}
    acknowledged: dict[str, bytes] = {}
    answered: list[int] = []
    cut_off = [0]
    lock = threading.Lock()
    halfway = threading.Semaphore(0)
    enough, killed = threading.Event(), threading.Event()

    def fast() -> None:
        while not killed.is_set():
            with lock:
                if not queue:
                    return
                content = queue.pop()
            try:
                response = partner.upload(
                    content, category="PHOTO_PROOF", code=None, token=token, timeout=60
                )
            except httpx.TransportError:
                with lock:
                    cut_off[0] += 1  # never acknowledged, so nothing is promised
                return  # the server is gone
            tally("crash", response.status_code)
            with lock:
                answered.append(response.status_code)
                if response.status_code == 200:
                    acknowledged[response.json()["id"]] = content
                    if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                        enough.set()

    def trickle(content: bytes) -> None:
        body = multipart({"category": "PHOTO_PROOF"}, "photo.png", content, "image/png")

        def chunks() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            halfway.release()
            killed.wait(120)
            yield body[len(body) // 2 :]

        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": MULTIPART_TYPE,
            "Content-Length": str(len(body)),
        }
        try:
            response = httpx.post(
                f"{server.url}{FILE_PATH}", content=chunks(), headers=headers, timeout=60
            )
        except httpx.TransportError:
            with lock:
                cut_off[0] += 1
            return
        with lock:
            answered.append(response.status_code)  # too early: the assertion below says so

    with ThreadPoolExecutor(max_workers=IN_FLIGHT) as pool:
        futures = [pool.submit(trickle, content) for content in held]
        futures += [pool.submit(fast) for _ in range(IN_FLIGHT - TRICKLING)]
        try:
            for _ in range(TRICKLING):
                assert halfway.acquire(timeout=120), server.output()
            assert enough.wait(timeout=120), server.output()
            server.kill9()
        finally:
            killed.set()
        for future in futures:
            future.result()
    killed_log = server.output()

    # Everything answered before the kill was a success; the held uploads and whatever
    # else was on the wire were cut off, unanswered.
    assert set(answered) == {200}, answered
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    assert cut_off[0] >= TRICKLING
    assert "Traceback" not in killed_log

    server.start()
    try:
        assert spool_and_temp_files(server.data_dir) == []
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            # Every acknowledged upload is there, byte for byte, through the API.
            for file_id, content in acknowledged.items():
                meta = http.get(f"{server.url}{FILE_PATH}/{file_id}")
                assert meta.status_code == 200, (file_id, meta.text)
                assert meta.json()["sha256"] == samples.sha256(content), file_id
                assert http.get(meta.json()["link"]).content == content, file_id
            # Nothing is half there: exactly the blobs with a row are stored (the restart
            # removed any the kill cut off between blob and row), and every row, answered
            # or not, downloads whole: the bytes of one of our uploads, as its row says.
            rows = crash_site.rows()
            assert crash_site.blobs() == set(rows)
            assert {file_id for file_id, _ in rows.values()} >= set(acknowledged)
            for file_id, sha256 in rows.values():
                meta = http.get(f"{server.url}{FILE_PATH}/{file_id}")
                assert meta.status_code == 200, (file_id, meta.text)
                got = http.get(meta.json()["link"])
                assert got.status_code == 200, file_id
                assert samples.sha256(got.content) == sha256, file_id
                assert sha256 in sent, file_id

        # And it serves as before: a fresh token, an upload, its download.
        partner = Partner(server.http, partner.client_id, partner.secret_key)
        content = samples.jpeg(seed=10_000)
        after = partner.upload(content, category="PHOTO_PROOF", code=None)
        assert after.status_code == 200, after.text
        assert httpx.get(after.json()["link"], timeout=30).content == content
        assert server_errors("crash", server.metrics_url) == 0
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
