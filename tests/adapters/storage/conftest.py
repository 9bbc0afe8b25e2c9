"""Fixtures: every blob store implementation, empty, one per test.

To add a backend (S3), add its name to ``BLOB_STORES`` and a ``<name>_blob_store`` fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from berkas.adapters.storage.local import LocalBlobStore
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.core.ports import BlobStore

BLOB_STORES = ["memory", "local"]


@pytest.fixture
def memory_blob_store() -> MemoryBlobStore:
    """The in-memory twin."""
    return MemoryBlobStore()


@pytest.fixture
def local_blob_store(tmp_path: Path) -> LocalBlobStore:
    """A local store rooted in a fresh directory."""
    return LocalBlobStore(tmp_path / "blobs")


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
