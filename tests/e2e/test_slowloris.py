"""200 slow connections at once (slowloris, CWE-400; issue 9): while they hang, the node
still serves, and each is cut by the server near its deadline, leaving no spool behind.

Before, every one of them stayed open for as long as the client liked, and the stalled
uploads held their spool files all that time.
"""

from __future__ import annotations

import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.support import samples
from tests.support.http import metric_statuses, multipart_body, spooled, wait_for
from tests.support.partner import FILE_PATH
from tests.support.server import Server
from tests.support.vectors import server_errors, tally

TIMEOUT = 2  # the server's header and body-idle timeouts, seconds
MARGIN = 20  # generous: two cores shared with other suites answer late, never early
HALF_HEADS = 100
STALLED_BODIES = 100
# Of the stalled bodies, these send more than the 1 MiB the multipart reader gathers
# before it parses, so each has opened a spool file when it stalls.
SPOOLING = 10


@dataclass
class Slow:
    sock: socket.socket
    kind: str
    quiet_since: float = 0.0  # when it last sent something (the deadline runs from here)
    closed_after: float | None = None
    answer: bytes = b""
    dribble: bool = field(default=False)


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # 200 sockets here, 200 in the server (which inherits this limit), plus spool files.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    srv = Server(
        data_dir=tmp_path_factory.mktemp("slowloris") / "data",
        env={
            "BERKAS_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
            "BERKAS_BODY_IDLE_TIMEOUT_SECONDS": str(TIMEOUT),
            "BERKAS_KEEPALIVE_TIMEOUT_SECONDS": str(TIMEOUT),
        },
    )
    srv.start()
    yield srv
    try:
        assert server_errors("slowloris", srv.metrics_url) == 0
    finally:
        srv.stop()
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
def test_200_slow_connections_are_cut_while_the_node_serves_others(server: Server) -> None:
    partner = server.new_partner()
    token = partner.token
    big, big_type = multipart_body(
        [("category", None, b"PHOTO_PROOF"), ("file", "p.jpg", samples.jpeg() + bytes(2 << 20))]
    )
    slow: list[Slow] = []
    try:
        for i in range(HALF_HEADS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            sock.sendall(b"POST " + FILE_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            # Half of them keep dribbling a byte now and then, within any per-read timeout.
            slow.append(Slow(sock, "half head", time.monotonic(), dribble=i % 2 == 0))
        for i in range(STALLED_BODIES):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            sent = big[:1_200_000] if i < SPOOLING else big[:1000]
            sock.sendall(
                f"POST {FILE_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: {big_type}\r\nContent-Length: {len(big)}\r\n\r\n".encode()
                + sent
            )
            slow.append(Slow(sock, "stalled body", time.monotonic()))

        # While they hang, the node answers others.
        answered: dict[str, int] = {}

        def others() -> None:
            answered["healthz"] = httpx.get(f"{server.url}/healthz", timeout=60).status_code
            done = partner.upload(samples.jpeg(seed=7), category="PHOTO_PROOF", code=None)
            answered["upload"] = done.status_code

        normal = threading.Thread(target=others)
        normal.start()
        most_spooled = watch_until_closed(slow, server, deadline=TIMEOUT + MARGIN)
        normal.join(timeout=60)
    finally:
        for s in slow:
            s.sock.close()

    assert answered == {"healthz": 200, "upload": 200}
    still_open = [s.kind for s in slow if s.closed_after is None]
    assert still_open == [], f"{len(still_open)} slow connections were never cut"
    for s in slow:
        assert s.closed_after is not None
        assert s.closed_after <= TIMEOUT + MARGIN, (s.kind, s.closed_after)
        # Cut at the deadline with the envelope, never refused on sight or with a 5xx.
        assert s.answer.startswith(b"HTTP/1.1 408 "), (s.kind, s.answer[:200])
        assert b'"code": "request_timeout"' in s.answer, s.answer
        tally("slowloris", 408)
    assert most_spooled >= 1, "no stalled upload reached the spool: the test lost its teeth"
    assert wait_for(lambda: not spooled(server.data_dir), timeout=MARGIN), spooled(server.data_dir)
    statuses = metric_statuses(server.metrics_url, FILE_PATH)
    assert statuses.get("408", 0) == STALLED_BODIES, statuses
    assert "Traceback" not in server.output()


def watch_until_closed(slow: list[Slow], server: Server, deadline: float) -> int:
    """Read every connection until the server closes it (or ``deadline`` s pass since it
    last sent), dribbling on the ones that do; the most spool files seen at once."""
    selector = selectors.DefaultSelector()
    for s in slow:
        s.sock.setblocking(False)
        selector.register(s.sock, selectors.EVENT_READ, s)
    most_spooled = 0
    last_dribble = time.monotonic()
    open_ = len(slow)
    while open_:
        now = time.monotonic()
        if all(now - s.quiet_since > deadline for s in slow if s.closed_after is None):
            break
        for key, _ in selector.select(timeout=0.1):
            s = key.data
            try:
                chunk = s.sock.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                chunk = b"" if s.answer else None
            if chunk is None:
                continue
            s.answer += chunk
            if not chunk:
                s.closed_after = time.monotonic() - s.quiet_since
                selector.unregister(s.sock)
                open_ -= 1
        if time.monotonic() - last_dribble > 0.5:
            last_dribble = time.monotonic()
            for s in slow:
                if s.dribble and s.closed_after is None and not s.answer:
                    try:
                        s.sock.send(b"x")
                    except OSError:
                        continue
        most_spooled = max(most_spooled, len(spooled(server.data_dir)))
    selector.close()
    return most_spooled
