"""/healthz and /readyz through the real app in-process: readiness follows its dependencies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from berkas.api.app import create_app
from berkas.config import load_settings
from berkas.wiring import prepare
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


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_serving_app_repeats_its_chores(tmp_path: Path, anyio_backend: str) -> None:
    services = prepare(
        load_settings(data_dir=tmp_path, housekeeping_interval_seconds=1), serving=False
    )
    rounds: list[int] = []
    original = services.housekeeping.run_once

    def counted() -> int:
        rounds.append(1)
        return original()

    services.housekeeping.run_once = counted  # type: ignore[method-assign]
    services.housekeeping.interval = timedelta(milliseconds=20)
    app = create_app(services)
    try:
        async with app.router.lifespan_context(app):
            with anyio.fail_after(5):
                while len(rounds) < 2:
                    await anyio.sleep(0.01)
    finally:
        services.close()
    assert len(rounds) >= 2
