"""``berkas serve --workers N`` (docs/design.md 5.6): one node, N processes on one port,
each with a node number of its own, behind a supervisor that holds the data dir's lock."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import samples
from tests.support.errors import assert_error
from tests.support.fixture_server import free_port
from tests.support.partner import PREFIX, TOKEN_PATH, Partner
from tests.support.postgres import fresh_database
from tests.support.rgw import Rgw
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


@pytest.fixture(scope="module")
def scaled_out(
    tmp_path_factory: pytest.TempPathFactory, e2e_postgres: str, rgw: Rgw
) -> Iterator[Server]:
    """Two workers on PostgreSQL for metadata and Ceph RGW for bytes."""
    with rgw.bucket() as bucket:
        server = workers_server(
            tmp_path_factory.mktemp("workers") / "data",
            BERKAS_DATABASE_URL=fresh_database(e2e_postgres, "e2e_workers"),
            BERKAS_STORAGE_URL=f"s3://{bucket}/workers",
            **rgw.env,
        )
        server.start()
        try:
            wait_for_workers(server, 2)
            yield server
        finally:
            server.stop()
        assert server.process is not None
        assert server.process.returncode == 0, server.output()


def test_two_workers_on_postgresql_and_rgw_serve_a_partners_flow(scaled_out: Server) -> None:
    partner = scaled_out.new_partner()
    assert partner.get_token().status_code == 200
    numbers = set()
    for seed in range(12):
        file_id, link, content = upload_and_fetch(partner, seed)
        numbers.add(file_id.split("-")[1])
        meta = httpx.get(f"{scaled_out.url}{PREFIX}/file/{file_id}", headers=partner.auth())
        assert meta.status_code == 200, meta.text
        assert meta.json()["sha256"] == samples.sha256(content)
        download = httpx.get(link, timeout=30)
        assert download.status_code == 200
        assert download.content == content
    assert numbers <= {"0001", "0002"}


def test_100_concurrent_uploads_on_postgresql_and_rgw_get_100_distinct_ids(
    scaled_out: Server,
) -> None:
    partner = scaled_out.new_partner()
    partner.token  # noqa: B018 - fetched once, before the threads share it
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda seed: upload_and_fetch(partner, seed), range(100, 200)))
    ids = [file_id for file_id, _, _ in results]
    assert len(set(ids)) == 100
    # Both workers took uploads, each under its own number.
    assert {file_id.split("-")[1] for file_id in ids} == {"0001", "0002"}
    with httpx.Client(timeout=30) as http:
        for file_id, link, content in results:
            download = http.get(link)
            assert download.status_code == 200, file_id
            assert hashlib.sha256(download.content).digest() == hashlib.sha256(content).digest()


def token_answers(server: Server, worker: int, status: int) -> float:
    """How many POST /token worker ``worker`` answered with ``status`` (its own metrics)."""
    metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port + worker}/metrics").text
    pattern = (
        r'^berkas_http_requests_total\{method="POST",route="'
        + re.escape(TOKEN_PATH)
        + rf'",status="{status}"\}} (\S+)$'
    )
    found = re.search(pattern, metrics, re.MULTILINE)
    return 0.0 if found is None else float(found.group(1))


def test_a_request_id_replays_on_either_worker(scaled_out: Server) -> None:
    # DOKU's rule across the node's processes: the replay record is in the shared
    # database, so whichever worker a retry lands on answers the first body with 409.
    partner = scaled_out.new_partner()
    body = json.dumps({"grant_type": "client_credentials", "valid_time": "10"}).encode()
    first = partner.signed("POST", TOKEN_PATH, body, request_id="workers-replay-1")
    assert first.status_code == 200, first.text
    before = [token_answers(scaled_out, k, 409) for k in range(2)]
    # Each retry on a fresh connection (Loopback pools nothing); which worker accepts it
    # is the kernel's choice, so retry until each worker has answered the replay.
    for attempt in range(200):
        again = partner.signed("POST", TOKEN_PATH, body, request_id="workers-replay-1")
        assert again.status_code == 409, again.text
        assert again.content == first.content
        after = [token_answers(scaled_out, k, 409) for k in range(2)]
        if attempt >= 3 and all(a > b for a, b in zip(after, before, strict=True)):
            break
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    other = json.dumps({"grant_type": "client_credentials", "valid_time": "11"}).encode()
    for _ in range(8):
        different = partner.signed("POST", TOKEN_PATH, other, request_id="workers-replay-1")
        assert_error(different, 409, "request_id_reused")


def test_workers_stop_by_themselves_when_their_supervisor_is_killed_with_9(
    tmp_path: Path,
) -> None:
    # A worker must never outlive the process holding its node's lock: the life pipe's
    # write end dies with the supervisor, and each worker then stops itself.
    server = workers_server(tmp_path / "data")
    server.start()
    pids = wait_for_workers(server, 2)
    partner = server.new_partner()
    file_id, link, content = upload_and_fetch(partner, 1)
    server.kill9()
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    for pid in alive:  # not left behind by a failing run
        os.kill(pid, signal.SIGKILL)
    assert not alive, f"workers {alive} outlived their supervisor:\n{server.output()}"
    # Nothing holds the data dir's lock or the port now: a new serve starts on both.
    server.start()
    try:
        wait_for_workers(server, 2)
        assert httpx.get(link, timeout=30).content == content
        meta = httpx.get(f"{server.url}{PREFIX}/file/{file_id}", headers=partner.auth())
        assert meta.status_code == 200, meta.text
        upload_and_fetch(partner, 2)
    finally:
        server.stop()
    assert server.process is not None
    assert server.process.returncode == 0, server.output()
