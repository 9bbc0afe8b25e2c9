"""End-to-end fixtures: a real ``berkas serve`` on loopback, driven only over HTTP and the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.partner import Partner
from tests.support.postgres import fresh_database, postgres_url
from tests.support.rgw import Rgw
from tests.support.server import Server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_postgres() -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the end-to-end suite; a database per module."""
    with postgres_url() as url:
        yield url


# The foundation's end-to-end suite runs on the embedded default and on the scale-out
# stores (PostgreSQL for metadata, Ceph RGW for bytes), each through a real `berkas serve`.
BACKENDS = ["embedded", "postgresql+rgw"]


@pytest.fixture(scope="module", params=BACKENDS)
def backend_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The environment that points a server at this run's backend."""
    if request.param == "embedded":
        yield {}
        return
    cluster: str = request.getfixturevalue("e2e_postgres")
    gateway: Rgw = request.getfixturevalue("rgw")
    name = "e2e_" + re.sub(r"[^a-z0-9]+", "_", request.module.__name__.lower())[-40:]
    with gateway.bucket() as bucket:
        yield {
            "BERKAS_DATABASE_URL": fresh_database(cluster, name),
            "BERKAS_STORAGE_URL": f"s3://{bucket}/e2e",
            **gateway.env,
        }


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("e2e")
    srv = Server(
        data_dir=root / "data",
        # The tests' own fixture servers live on loopback (issue 3).
        env={"BERKAS_FETCH_ALLOW_NETWORKS": "127.0.0.0/8", **backend_env},
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
