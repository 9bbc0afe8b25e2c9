"""The e2e ``Server`` helper itself: a port taken between ``free_port`` and bind is retried."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server

pytestmark = pytest.mark.e2e


def test_a_port_taken_before_the_child_binds_it_is_retried_on_another(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        # What a parallel test run can do to a port free_port() just released.
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = Server(data_dir=tmp_path / "data", port=taken)
        server.start()
        try:
            assert server.port != taken
            assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        finally:
            server.stop()
