"""/healthz and /readyz through the real app in-process: readiness follows its dependencies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import InProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[InProcess]:
    srv = InProcess(tmp_path / "data")
    yield srv
    srv.close()


def test_readyz_is_503_naming_storage_when_the_blob_root_is_gone(server: InProcess) -> None:
    ready = server.http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}

    # The volume holding the blobs was unmounted or wiped under a running server.
    shutil.rmtree(server.data_dir / "blobs")

    unready = server.http.get("/readyz")
    assert unready.status_code == 503, unready.text
    assert unready.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "storage": "storage_unavailable"},
    }
    assert server.http.request("HEAD", "/readyz").status_code == 503
    # Liveness is not readiness: the process itself is fine, so it must not be restarted.
    assert server.http.get("/healthz").status_code == 200
