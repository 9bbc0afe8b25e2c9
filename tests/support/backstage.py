"""What a server keeps, read behind its back: the objects in its store and the rows of
its database, for tests that must see what the API cannot show (deleted, encrypted)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.support.rgw import Rgw
from tests.support.server import Server


def stored_objects(server: Server, request: pytest.FixtureRequest) -> dict[str, bytes]:
    """Every object the server's store holds, by name, with its bytes as stored."""
    storage = server.env.get("BERKAS_STORAGE_URL")
    if storage is None:
        root = server.data_dir / "blobs"
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and ".tmp" not in p.parts
        }
    gateway: Rgw = request.getfixturevalue("rgw")
    client = gateway.client()
    bucket = urlsplit(storage).netloc
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    names = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {name: client.get_object(Bucket=bucket, Key=name)["Body"].read() for name in names}


def stored_names(server: Server, request: pytest.FixtureRequest) -> list[str]:
    return list(stored_objects(server, request))


def query(server: Server, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` asked of the server's database itself."""
    engine = _engine(server)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def execute(server: Server, sql: str, **params: Any) -> int:
    """Change the server's database behind its back (a tampering test); rows touched."""
    engine = _engine(server)
    try:
        with engine.begin() as connection:
            return int(connection.execute(text(sql), params).rowcount)
    finally:
        engine.dispose()


def replace_object(server: Server, request: pytest.FixtureRequest, name: str, data: bytes) -> None:
    """Overwrite a stored object (``name`` as ``stored_objects`` lists it)."""
    storage = server.env.get("BERKAS_STORAGE_URL")
    if storage is None:
        (server.data_dir / "blobs" / name).write_bytes(data)
        return
    gateway: Rgw = request.getfixturevalue("rgw")
    gateway.client().put_object(Bucket=urlsplit(storage).netloc, Key=name, Body=data)


def _engine(server: Server) -> Engine:
    url = server.env.get("BERKAS_DATABASE_URL") or f"sqlite:///{server.data_dir / 'berkas.db'}"
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
