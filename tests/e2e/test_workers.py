"""``berkas serve --workers N`` (docs/design.md 5.6): one node, N processes on one port,
each with a node number of its own, behind a supervisor that holds the data dir's lock."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support import samples
from tests.support.fixture_server import free_port
from tests.support.partner import PREFIX, Partner
from tests.support.server import Server


def two_free_ports() -> int:
    """A port p with p + 1 free too: the two workers' metrics listeners."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def workers_server(data_dir: Path, **env: str) -> Server:
    server = Server(
        data_dir=data_dir, env={"BERKAS_WORKERS": "2", "BERKAS_DEMO_CLIENT": "false", **env}
    )
    server.metrics_port = two_free_ports()
    while server.port in (server.metrics_port, server.metrics_port + 1):
        server.port = free_port()
    return server


def workers_of(server: Server) -> list[int]:
    """The supervisor's children, the workers (Linux's /proc)."""
    path = Path(f"/proc/{server.pid}/task/{server.pid}/children")
    return [int(pid) for pid in path.read_text().split()]


def wait_for_workers(server: Server, count: int, *, gone: int | None = None) -> list[int]:
    """The workers' pids once ``count`` of them (none of them ``gone``) answer /readyz."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = workers_of(server)
        if len(pids) == count and gone not in pids:
            ready = [
                httpx.get(f"http://127.0.0.1:{server.metrics_port + k}/readyz", timeout=2)
                for k in range(count)
            ]
            if all(r.status_code == 200 for r in ready):
                return pids
        time.sleep(0.2)
    raise AssertionError(f"workers did not come up:\n{server.output()}")


def upload_and_fetch(partner: Partner, seed: int) -> tuple[str, str, bytes]:
    content = samples.jpeg(48, 32, seed=seed)
    response = partner.upload(content, filename=f"ktp-{seed}.jpg")
    assert response.status_code == 200, response.text
    body = response.json()
    return body["id"], body["link"], content


def test_two_workers_serve_a_partners_flow(tmp_path: Path) -> None:
    server = workers_server(tmp_path / "data")
    server.start()
    try:
        pids = wait_for_workers(server, 2)
        assert len(set(pids)) == 2
        assert server.pid not in pids
        partner = server.new_partner()
        assert partner.get_token().status_code == 200
        numbers = set()
        for seed in range(12):
            file_id, link, content = upload_and_fetch(partner, seed)
            numbers.add(file_id.split("-")[1])
            download = httpx.get(link, timeout=30)
            assert download.status_code == 200
            assert download.content == content
            meta = httpx.get(f"{server.url}{PREFIX}/file/{file_id}", headers=partner.auth())
            assert meta.status_code == 200, meta.text
        # Each worker mints under its own number (BERKAS_NODE_ID 1, then 2).
        assert numbers <= {"0001", "0002"}
        # Each worker's metrics on a port of its own.
        for k in range(2):
            metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port + k}/metrics")
            assert metrics.status_code == 200
            assert "berkas_http_requests_total" in metrics.text
    finally:
        server.stop()
    assert server.process is not None
    assert server.process.returncode == 0, server.output()


def test_300_concurrent_uploads_get_300_distinct_ids_all_downloadable(tmp_path: Path) -> None:
    server = workers_server(tmp_path / "data")
    server.start()
    try:
        wait_for_workers(server, 2)
        partner = server.new_partner()
        partner.token  # noqa: B018 - fetched once, before the threads share it
        with ThreadPoolExecutor(32) as pool:
            results = list(pool.map(lambda seed: upload_and_fetch(partner, seed), range(300)))
        ids = [file_id for file_id, _, _ in results]
        assert len(set(ids)) == 300
        assert {file_id.split("-")[1] for file_id in ids} == {"0001", "0002"}
        for _, link, content in results:
            download = httpx.get(link, timeout=30)
            assert download.status_code == 200
            assert hashlib.sha256(download.content).digest() == hashlib.sha256(content).digest()
    finally:
        server.stop()


def test_a_worker_killed_with_9_loses_nothing_acknowledged_and_is_restarted(
    tmp_path: Path,
) -> None:
    server = workers_server(tmp_path / "data")
    server.start()
    try:
        before = wait_for_workers(server, 2)
        partner = server.new_partner()
        partner.token  # noqa: B018
        acknowledged: list[tuple[str, str, bytes]] = []
        failures = 0

        def one(seed: int) -> None:
            nonlocal failures
            try:
                acknowledged.append(upload_and_fetch(partner, seed))
            except (AssertionError, httpx.TransportError):
                failures += 1  # cut by the kill: never acknowledged

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, seed) for seed in range(120)]
            time.sleep(0.5)
            os.kill(before[0], signal.SIGKILL)
            for future in futures:
                future.result()
        after = wait_for_workers(server, 2, gone=before[0])
        assert before[0] not in after
        assert before[1] in after
        # The node keeps serving and every acknowledged upload is there, bytes and row.
        for seed in range(120, 130):
            acknowledged.append(upload_and_fetch(partner, seed))
        assert len(acknowledged) >= 10
        for file_id, link, content in acknowledged:
            assert httpx.get(link, timeout=30).content == content
            meta = httpx.get(f"{server.url}{PREFIX}/file/{file_id}", headers=partner.auth())
            assert meta.status_code == 200, meta.text
        # The restarted worker took its number back: still only 1 and 2.
        assert {file_id.split("-")[1] for file_id, _, _ in acknowledged} <= {"0001", "0002"}
        assert "restarting it" in server.output()
    finally:
        server.stop()
    # Nothing the dead worker staged or spooled is left once its successor started.
    assert not list((tmp_path / "data" / "spool").rglob("upload-*.part"))


def test_sigterm_stops_every_worker_and_a_second_serve_is_refused(tmp_path: Path) -> None:
    server = workers_server(tmp_path / "data")
    server.start()
    pids = wait_for_workers(server, 2)
    refused = subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", "serve", "--port", str(free_port())],
        env={
            **os.environ,
            "BERKAS_DATA_DIR": str(tmp_path / "data"),
            "BERKAS_LOG_LEVEL": "warning",
            "BERKAS_METRICS_PORT": str(two_free_ports()),
            "BERKAS_WORKERS": "2",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert f"another berkas serve (pid {server.pid}) is using" in refused.stderr
    partner = server.new_partner()
    upload_and_fetch(partner, 1)
    server.stop()
    assert server.process is not None
    assert server.process.returncode == 0, server.output()
    time.sleep(0.5)  # reaped by init once their parent has gone
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    # The lock is free again: the node starts afresh on its data dir.
    server.start()
    try:
        wait_for_workers(server, 2)
        upload_and_fetch(server.new_partner(), 2)
    finally:
        server.stop()
