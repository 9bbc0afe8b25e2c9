"""What a real ``berkas serve`` tells its operator when it starts (the address bound, the
public URL, the node, the database and store with credentials masked) and how it stops:
SIGTERM finishes the node's own cleanup and exits with status 0, one process or several."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from tests.support.fixture_server import free_port
from tests.support.server import Server

PUBLIC = "https://kyc.example.test"
PASSWORD = "hunter2-never-printed"  # a test's own, to see it masked


def banner(server: Server) -> list[str]:
    """The banner's lines: from ``berkas ... listening on`` to the last indented one."""
    lines = server.output().splitlines()
    first = next(i for i, line in enumerate(lines) if " listening on " in line)
    end = first + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return lines[first:end]


def with_password(database_url: str) -> str:
    # The test cluster trusts loopback, so a password in the URL is carried, not checked.
    return re.sub(r"://([^:@/]+)@", rf"://\1:{PASSWORD}@", database_url, count=1)


def test_the_banner_names_the_bound_address_public_url_node_database_and_store(
    tmp_path: Path, backend_env: dict[str, str]
) -> None:
    env = {**backend_env, "BERKAS_PUBLIC_URL": PUBLIC, "BERKAS_NODE_ID": "7"}
    if "BERKAS_DATABASE_URL" in env:
        env["BERKAS_DATABASE_URL"] = with_password(env["BERKAS_DATABASE_URL"])
    server = Server(data_dir=tmp_path / "data", env=env)
    server.start()
    try:
        lines = banner(server)
    finally:
        server.stop()
    head, *rest = lines
    assert re.fullmatch(rf"berkas \S+ listening on 127\.0\.0\.1:{server.port} \(node 7\)", head)
    shown = dict(line.strip().split(":", 1) for line in rest)
    assert shown["public URL"].strip() == f"{PUBLIC} (BERKAS_PUBLIC_URL; links and the docs use it)"
    assert shown["data dir"].strip() == str(tmp_path / "data")
    assert shown["metrics"].strip() == f"http://127.0.0.1:{server.metrics_port}/metrics"
    if "BERKAS_DATABASE_URL" in env:
        assert PASSWORD not in server.output()
        assert shown["database"].strip().startswith("postgresql")
        assert ":***@127.0.0.1:" in shown["database"]
        bucket_and_prefix = env["BERKAS_STORAGE_URL"]
        assert shown["store"].strip() == (
            f"{bucket_and_prefix} (endpoint {env['BERKAS_S3_ENDPOINT_URL']})"
        )
        assert env["AWS_SECRET_ACCESS_KEY"] not in server.output()
    else:
        assert shown["database"].strip() == f"sqlite:///{tmp_path / 'data' / 'berkas.db'}"
        assert shown["store"].strip() == f"file://{tmp_path / 'data' / 'blobs'}"


def test_the_banner_says_which_address_a_name_was_bound_to(tmp_path: Path) -> None:
    # "localhost" is what the operator typed; the banner says what it became.
    server = Server(data_dir=tmp_path / "data", args=("--host", "localhost"))
    server.start()
    try:
        head = banner(server)[0]
        public = banner(server)[1]
    finally:
        server.stop()
    assert f" listening on 127.0.0.1:{server.port} (node " in head
    assert f"http://localhost:{server.port} (from the listen address;" in public


def test_sigterm_stops_one_process_cleanly_with_status_0(tmp_path: Path) -> None:
    server = Server(data_dir=tmp_path / "data")
    server.start()
    server.stop()  # SIGTERM

    assert server.process is not None
    assert server.process.returncode == 0, server.output()
    # Printed after serve's own cleanup (node number released, database closed).
    assert server.output().rstrip().endswith("berkas stopped (node 1)"), server.output()
    # The port is free at once, and a restart on the data dir is a normal start.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", server.port))
    server.start()
    server.stop()
    assert server.process.returncode == 0


def test_sigterm_stops_every_worker_cleanly_with_status_0(tmp_path: Path) -> None:
    server = Server(data_dir=tmp_path / "data", env={"BERKAS_WORKERS": "2"})
    # Each worker's metrics on a port of its own: BERKAS_METRICS_PORT and the next.
    while True:
        server.metrics_port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", server.metrics_port + 1))
            except OSError:
                continue
        if server.port not in (server.metrics_port, server.metrics_port + 1):
            break
    server.start()
    deadline = time.monotonic() + 30
    while "  worker 1:" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    head = banner(server)[0]
    server.stop()  # SIGTERM to the supervisor

    assert head.endswith(f" listening on 127.0.0.1:{server.port} (2 workers)")
    assert server.process is not None
    assert server.process.returncode == 0, server.output()
    output = server.output()
    assert "while stopping" not in output  # each worker exited 0 too
    assert output.rstrip().endswith("berkas stopped (2 workers)"), output
