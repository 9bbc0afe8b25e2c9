"""A data dir made by an older release upgrades (embedded, and PostgreSQL + Ceph RGW): the
fixture ``tests/fixtures/release-d954291`` was written by berkas as released at commit
d954291 (``scripts/make_release_fixture.py`` ran that release's own ``serve`` and
``clients create`` and uploaded through the wire API): schema 0005, documents in clear,
the photo with its GPS, no retention date. This release starts on it, serves the old
documents as they were, counts them in ``secrets status``, and ``berkas files upgrade``
encrypts them (their plaintext leaves the store) with links giving the same bytes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, insert

from berkas.adapters.db.database import SqlDatabase
from berkas.core import envelope, metadata
from berkas.core.content import Kind
from tests.support import backstage
from tests.support.partner import FILE_PATH, Partner
from tests.support.rgw import Rgw
from tests.support.server import Server

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release-d954291"
MANIFEST: dict[str, Any] = json.loads((FIXTURE / "manifest.json").read_text())
# The tables that release had (schema 0005), in an order their foreign keys accept.
TABLES = ["clients", "files", "replays", "pending_blobs", "signing_keys", "service_secrets"]


def _original(name: str) -> bytes:
    return (FIXTURE / f"{name}.original").read_bytes()


def _windows(data: bytes, width: int = 24, step: int = 97) -> list[bytes]:
    return [data[i : i + width] for i in range(0, max(1, len(data) - width), step)]


def _copy_to_postgresql(url: str) -> None:
    """The release's rows, copied into PostgreSQL at its schema revision (0005)."""
    target = SqlDatabase.from_url(url)
    try:
        target.migrate("0005")
    finally:
        target.close()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    tables = MetaData()
    tables.reflect(engine, only=TABLES)
    with sqlite3.connect(FIXTURE / "berkas.db") as source, engine.begin() as connection:
        source.row_factory = sqlite3.Row
        for name in TABLES:
            rows = [dict(row) for row in source.execute(f"SELECT * FROM {name}")]  # noqa: S608
            table = tables.tables[name]
            for row in rows:
                for column in table.columns:
                    # SQLite keeps booleans as 0/1 and times as text; PostgreSQL wants types.
                    value = row.get(column.name)
                    if value is not None and column.type.python_type is bool:
                        row[column.name] = bool(value)
            if rows:
                connection.execute(insert(table), rows)
    engine.dispose()


def _copy_objects(env: dict[str, str], rgw: Rgw) -> None:
    storage = urlsplit(env["BERKAS_STORAGE_URL"])
    client = rgw.client()
    for path in (FIXTURE / "blobs").rglob("*"):
        if path.is_file():
            key = path.relative_to(FIXTURE / "blobs").as_posix()
            name = f"{storage.path.strip('/')}/{key}"
            client.put_object(Bucket=storage.netloc, Key=name, Body=path.read_bytes())


@pytest.fixture(scope="module")
def upgraded_node(
    tmp_path_factory: pytest.TempPathFactory,
    backend_env: dict[str, str],
    request: pytest.FixtureRequest,
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("release") / "data"
    data_dir.mkdir(mode=0o700)
    if "BERKAS_DATABASE_URL" in backend_env:
        _copy_to_postgresql(backend_env["BERKAS_DATABASE_URL"])
        _copy_objects(backend_env, request.getfixturevalue("rgw"))
    else:
        shutil.copy2(FIXTURE / "berkas.db", data_dir / "berkas.db")
        shutil.copytree(FIXTURE / "blobs", data_dir / "blobs")
    # git keeps no file modes: the key file is made private again, as the release left it.
    shutil.copy2(FIXTURE / "master-key", data_dir / "master-key")
    (data_dir / "master-key").chmod(0o600)
    server = Server(data_dir=data_dir, env={**backend_env, "BERKAS_DEMO_CLIENT": "false"})
    server.start()
    yield server
    server.stop()


def _served(partner: Partner, file_id: str) -> tuple[dict[str, Any], bytes]:
    described = partner.http.request("GET", f"{FILE_PATH}/{file_id}", headers=partner.auth())
    assert described.status_code == 200, described.text
    got = httpx.get(described.json()["link"], timeout=30)
    assert got.status_code == 200, got.text
    return described.json(), got.content


def test_a_data_dir_of_an_older_release_upgrades(
    upgraded_node: Server, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = upgraded_node
    partner = Partner(server.http, MANIFEST["client_id"], MANIFEST["secret_key"])
    documents: dict[str, dict[str, Any]] = MANIFEST["documents"]
    # The old documents read back exactly as they were sent, by the partner's own secret.
    for name, document in documents.items():
        described, served = _served(partner, document["id"])
        assert served == _original(name)
        assert described["sha256"] == document["sha256"]
    status = json.loads(server.cli("secrets", "status"))
    assert (
        status["documents_not_encrypted"],
        status["documents_not_stripped"],
        status["documents_without_retention"],
    ) == (3, 3, 3)
    before = backstage.stored_objects(server, request)
    assert any(_original("photo")[100:140] in blob for blob in before.values())

    upgraded = subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", "files", "upgrade", "--strip"],
        env={**os.environ, "BERKAS_DATA_DIR": str(server.data_dir), **server.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip().startswith("encrypted 3, stripped 1, checked 2, stamped 3")
    after = backstage.stored_objects(server, request)
    assert len(after) == 3
    for blob in after.values():
        assert blob.startswith(envelope.MAGIC)
        for name in documents:
            assert not [w for w in _windows(_original(name)) if w in blob], name
    # The PDF and the logo give the same bytes; the photo comes back without its GPS.
    for name in ("agreement", "logo"):
        described, served = _served(partner, documents[name]["id"])
        assert served == _original(name)
        assert described["retained_until"] is not None
    described, photo = _served(partner, documents["photo"]["id"])
    assert "GPS" in described["metadata_removed"]
    sent_path, served_path = tmp_path / "sent.jpg", tmp_path / "served.jpg"
    sent_path.write_bytes(_original("photo"))
    served_path.write_bytes(photo)
    assert metadata.find_metadata(sent_path, Kind.JPEG)  # the release stored its EXIF
    assert metadata.find_metadata(served_path, Kind.JPEG) == ()
    status = json.loads(server.cli("secrets", "status"))
    assert (
        status["documents_not_encrypted"],
        status["documents_not_stripped"],
        status["documents_without_retention"],
    ) == (0, 0, 0)
