"""End-to-end fixtures: a real ``berkas serve`` on loopback, driven only over HTTP and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.partner import Partner
from tests.support.server import Server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("e2e")
    srv = Server(
        data_dir=root / "data",
        # The tests' own fixture servers live on loopback (issue 3).
        env={"BERKAS_FETCH_ALLOW_NETWORKS": "127.0.0.0/8"},
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def partner(server: Server) -> Partner:
    return server.new_partner()


def spool_and_temp_files(data_dir: Path) -> list[Path]:
    """Partial files anywhere under the data dir: spooled uploads and blob temp names."""
    leftovers = list((data_dir / "spool").glob("*"))
    tmp = data_dir / "blobs" / ".tmp"
    if tmp.exists():
        leftovers += list(tmp.glob("*"))
    return leftovers
