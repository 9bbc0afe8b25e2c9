"""The scale-out stores going away under a running node: first Ceph RGW, then PostgreSQL.

Each outage answers 503 in the envelope (`storage_unavailable`, `database_unavailable`)
within bounded timeouts, `/readyz` says which dependency is down, and once it is back
the same process serves again: no restart, nothing acknowledged lost.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import samples
from tests.support.errors import assert_error
from tests.support.partner import PREFIX
from tests.support.postgres import Cluster, controlled_cluster, required_bindir
from tests.support.rgw import Rgw
from tests.support.server import Server


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with controlled_cluster(required_bindir()) as running:
        yield running


def readiness(server: Server) -> tuple[int, dict[str, str]]:
    ready = httpx.get(f"{server.url}/readyz", timeout=60)
    return ready.status_code, ready.json()["checks"]


def test_rgw_then_postgresql_stopped_are_503_and_served_again_once_back(
    tmp_path: Path, rgw: Rgw, cluster: Cluster
) -> None:
    with rgw.bucket() as bucket:
        server = Server(
            data_dir=tmp_path / "data",
            env={
                **rgw.env,
                "BERKAS_STORAGE_URL": f"s3://{bucket}/faults",
                "BERKAS_DATABASE_URL": cluster.url,
            },
        )
        server.start()
        try:
            partner = server.new_partner()
            kept = partner.upload(samples.jpeg(seed=1), category="LOGO", code=None).json()

            # The object store goes away: uploads and downloads are 503, nothing stored.
            rgw.stop_gateway()
            try:
                started = time.monotonic()
                refused = partner.upload(samples.jpeg(seed=2), category="LOGO", code=None)
                assert_error(refused, 503, "storage_unavailable")
                assert rgw.endpoint not in refused.text  # no endpoint on the wire
                assert time.monotonic() - started < 60  # bounded: 5 s connect, 3 attempts
                # A proxy link streams from the store: 503 too, before any byte is sent.
                assert_error(httpx.get(kept["link"], timeout=60), 503, "storage_unavailable")
                assert readiness(server) == (
                    503,
                    {"database": "ok", "storage": "storage_unavailable"},
                )
            finally:
                rgw.start_gateway()
            assert readiness(server) == (200, {"database": "ok", "storage": "ok"})
            again = partner.upload(samples.jpeg(seed=3), category="LOGO", code=None)
            assert again.status_code == 200, again.text

            # Then the database goes away.
            cluster.stop()
            try:
                refused = partner.upload(samples.jpeg(seed=4), category="LOGO", code=None)
                assert_error(refused, 503, "database_unavailable")
                # Every operation that needs the database says so (the OpenAPI document
                # lists this 503 for each: tests/api/test_openapi_statuses.py).
                signed = (
                    partner.get_token(),
                    partner.signed("GET", f"{PREFIX}/file", query="businessType=PERSONAL"),
                    partner.http.request(
                        "GET", f"{PREFIX}/file/{kept['id']}", headers=partner.auth()
                    ),
                    httpx.get(kept["link"], timeout=60),
                    # A delete that cannot reach the database removes nothing (checked
                    # below: the file is intact once the database is back).
                    partner.http.request(
                        "DELETE", f"{PREFIX}/file/{kept['id']}", headers=partner.auth()
                    ),
                    partner.http.request(
                        "POST", f"{PREFIX}/file/{kept['id']}/links/revoke", headers=partner.auth()
                    ),
                    partner.http.request(
                        "GET", f"{PREFIX}/file/{kept['id']}/events", headers=partner.auth()
                    ),
                    partner.http.request("GET", f"{PREFIX}/files", headers=partner.auth()),
                )
                for answer in signed:
                    assert_error(answer, 503, "database_unavailable")
                status, checks = readiness(server)
                assert (status, checks["database"]) == (503, "database_unavailable")
            finally:
                cluster.start()
            assert readiness(server) == (200, {"database": "ok", "storage": "ok"})

            # Everything acknowledged is intact, through the same process.
            for answer, seed in ((kept, 1), (again.json(), 3)):
                meta = partner.http.request(
                    "GET", f"{PREFIX}/file/{answer['id']}", headers=partner.auth()
                )
                assert meta.status_code == 200, meta.text
                data = httpx.get(meta.json()["link"], timeout=30).content
                assert hashlib.sha256(data).hexdigest() == samples.sha256(samples.jpeg(seed=seed))
            assert "Traceback" not in server.output()
        finally:
            server.stop()
