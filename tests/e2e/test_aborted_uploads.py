"""A client that gives up mid-upload is not a server error (issue 9, defect 1).

Before, Starlette's ``ClientDisconnect`` escaped the multipart reader: two tracebacks in
the log and a 500 in ``/metrics`` for every aborted upload, which pages an operator for a
phone that lost its signal.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support import samples
from tests.support.http import metric_statuses, multipart_body, spooled, wait_for
from tests.support.partner import FILE_PATH
from tests.support.server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        data_dir=tmp_path_factory.mktemp("aborted") / "data", env={"BERKAS_LOG_LEVEL": "info"}
    )
    srv.start()
    yield srv
    srv.stop()


def test_an_upload_aborted_mid_body_is_one_quiet_line_a_499_and_no_spool_left(
    server: Server,
) -> None:
    partner = server.new_partner()
    token = partner.token
    # Past the 1 MiB the reader gathers before parsing, so the file part is being spooled.
    content = samples.jpeg(seed=9) + bytes(2 * 1024 * 1024)
    body, content_type = multipart_body(
        [("category", None, b"PHOTO_PROOF"), ("file", "photo.jpg", content)]
    )
    sent = body[: len(body) // 2]
    head = (
        f"POST {FILE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
        # The lie: twice what is ever sent.
        f"Content-Length: {len(body) * 2}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + sent)
        assert wait_for(lambda: bool(spooled(server.data_dir)), timeout=10)
    # The client is gone; the server notices, counts it and cleans up.
    assert wait_for(lambda: bool(metric_statuses(server.metrics_url, FILE_PATH)), timeout=10)

    statuses = metric_statuses(server.metrics_url, FILE_PATH)
    assert statuses == {"499": 1}, statuses
    assert spooled(server.data_dir) == []
    log = server.output()
    assert "Traceback" not in log, log
    # Text log lines: "<date> <time> LEVEL logger message".
    assert not re.search(r"^\S+ \S+ (ERROR|CRITICAL) ", log, re.M), log
    assert len(re.findall(r"^\S+ \S+ INFO \S+ .*disconnect", log, re.M | re.I)) == 1, log
    # And the node still serves uploads.
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    done = partner.upload(samples.jpeg(seed=10), category="PHOTO_PROOF", code=None)
    assert done.status_code == 200, done.text
