"""Fixtures: every blob store implementation, empty, one per test.

To add a backend, add its name to ``BLOB_STORES`` and a ``<name>_blob_store`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berkas.adapters.storage.local import LocalBlobStore
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.adapters.storage.s3 import S3BlobStore, S3Location
from berkas.core.ports import BlobStore
from tests.support.rgw import Rgw

BLOB_STORES = ["memory", "local", "s3"]


@pytest.fixture
def memory_blob_store() -> MemoryBlobStore:
    """The in-memory twin."""
    return MemoryBlobStore()


@pytest.fixture
def local_blob_store(tmp_path: Path) -> LocalBlobStore:
    """A local store rooted in a fresh directory."""
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def s3_blob_store(rgw: Rgw, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3BlobStore]:
    """An S3 store on the session's Ceph RGW: a fresh bucket, under a key prefix."""
    for name, value in rgw.env.items():
        if name.startswith("AWS_"):  # the store reads the standard AWS credential chain
            monkeypatch.setenv(name, value)
    with rgw.bucket() as bucket:
        yield s3_store(rgw, bucket)


def s3_store(rgw: Rgw, bucket: str, **options: Any) -> S3BlobStore:
    """An ``S3BlobStore`` on ``bucket`` of ``rgw`` under prefix ``tenant/a``."""
    location = S3Location(
        bucket=bucket, prefix="tenant/a", endpoint_url=rgw.endpoint, addressing_style="path"
    )
    return S3BlobStore(location, **options)


@pytest.fixture(params=BLOB_STORES)
def blob_store(request: pytest.FixtureRequest) -> BlobStore:
    """Each blob store in turn."""
    store: BlobStore = request.getfixturevalue(f"{request.param}_blob_store")
    return store


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """A directory for the spooled upload files a caller hands to ``put_file``."""
    directory = tmp_path / "spool"
    directory.mkdir()
    return directory
