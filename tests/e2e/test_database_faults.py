"""PostgreSQL going away under a running node: 503 envelopes, not ready, and recovery
without a restart once it is back (the scale-out issue, "Faults")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import samples
from tests.support.errors import assert_error
from tests.support.postgres import Cluster, controlled_cluster, required_bindir
from tests.support.server import Server


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with controlled_cluster(required_bindir()) as running:
        yield running


def test_a_stopped_database_is_503_and_a_restarted_one_serves_again(
    tmp_path: Path, cluster: Cluster
) -> None:
    server = Server(data_dir=tmp_path / "data", env={"BERKAS_DATABASE_URL": cluster.url})
    server.start()
    try:
        partner = server.new_partner()
        assert partner.upload(samples.png(), category="LOGO", code=None).status_code == 200
        token = partner.token

        cluster.stop()
        started = time.monotonic()
        refused = partner.upload(samples.png(seed=2), category="LOGO", code=None)
        assert_error(refused, 503, "database_unavailable")
        assert "Traceback" not in refused.text
        # Bounded: the connect timeout (5 s), not a hang.
        assert time.monotonic() - started < 20
        ready = httpx.get(f"{server.url}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "database_unavailable"
        assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200

        cluster.start()
        # The same process, the same token: pooled connections that died are replaced.
        again = partner.upload(samples.png(seed=3), category="LOGO", code=None)
        assert again.status_code == 200, again.text
        assert partner.token == token
        assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200
        described = partner.http.request(
            "GET", f"/adv-core-api/partner/v1.0/file/{again.json()['id']}", headers=partner.auth()
        )
        assert described.status_code == 200, described.text
    finally:
        server.stop()
