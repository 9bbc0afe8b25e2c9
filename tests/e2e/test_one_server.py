"""One ``berkas serve`` per data dir, and a port refused before the data dir is touched.

Before the lock, a second serve on a live data dir swept the first one's spool as a
crash's leftovers, and the upload streaming into the first server failed with a 500.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

from tests.support.fixture_server import free_port
from tests.support.partner import FILE_PATH
from tests.support.server import Server, cli

MIB = 1024 * 1024


def serve(data_dir: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``berkas serve`` to its end (it is expected to refuse, not to serve)."""
    return subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", "serve", "--port", str(port), *args],
        env={**os.environ, "BERKAS_DATA_DIR": str(data_dir), "BERKAS_LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        # Were it not refused, it would serve until killed: fail, do not hang.
        timeout=30,
        check=False,
    )


def noisy_jpeg(width: int, height: int) -> bytes:
    """A JPEG of several MB: noise does not compress, so the upload takes many chunks."""
    pixels = os.urandom(width * height * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def spooled(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "spool").glob("upload-*.part"))


def test_a_second_serve_is_refused_while_an_upload_into_the_first_completes(
    tmp_path: Path,
) -> None:
    first = Server(data_dir=tmp_path / "data")
    first.start()
    try:
        partner = first.new_partner()
        token = partner.token
        content = noisy_jpeg(2000, 1500)
        # Past the 1 MiB the server gathers before it parses (api/multipart.BATCH_BYTES),
        # so the file part has begun and its spool file exists while we pause.
        cut = 2 * MIB
        assert len(content) > cut + MIB
        boundary = f"berkas-e2e-{secrets.token_hex(8)}"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\n'
            f"PHOTO_PROOF\r\n--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        release = threading.Event()

        def body() -> Iterator[bytes]:
            yield head + content[:cut]
            release.wait(timeout=60)
            yield content[cut:]
            yield tail

        def upload() -> httpx.Response:
            return httpx.post(
                first.url + FILE_PATH,
                content=body(),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                },
                timeout=60,
            )

        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(upload)
            try:
                deadline = time.monotonic() + 20
                while not spooled(first.data_dir) and time.monotonic() < deadline:
                    time.sleep(0.05)
                [spool_file] = spooled(first.data_dir)
                names_before = sorted(p.name for p in first.data_dir.iterdir())

                # Admin verbs run beside the live server and leave its uploads be.
                assert len(json.loads(first.cli("clients", "list", "--json"))) == 2  # + demo
                second = serve(first.data_dir, free_port())

                assert second.returncode != 0
                assert second.stderr.strip() == (
                    f"Error: another berkas serve (pid {first.pid}) is using {first.data_dir}"
                )
                assert "listening on" not in second.stdout
                assert spool_file.exists()  # not swept as a crash's leftover
                assert sorted(p.name for p in first.data_dir.iterdir()) == names_before
                assert len(json.loads(first.cli("clients", "list", "--json"))) == 2  # no demo
            finally:
                release.set()
            response = in_flight.result(timeout=60)

        assert response.status_code == 200, response.text
        downloaded = httpx.get(response.json()["link"], timeout=30)
        assert downloaded.status_code == 200
        assert downloaded.content == content
        assert "Traceback" not in first.output()
    finally:
        first.stop()


def test_a_taken_port_is_refused_before_a_new_data_dir_is_made(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        done = serve(data_dir, port)

    assert done.returncode != 0
    assert done.stderr.strip() == (
        f"Error: cannot listen on 127.0.0.1:{port}: address already in use "
        "(another process listens there; choose another --port)"
    )
    assert "listening on" not in done.stdout
    assert not data_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_taken_port_leaves_an_existing_data_dir_unswept_and_unlocked(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cli(data_dir, "db", "migrate")
    leftover = data_dir / "spool" / "upload-leftover.part"
    leftover.write_bytes(b"what a crash left")
    before = sorted(p.name for p in data_dir.iterdir())
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()

        done = serve(data_dir, squatter.getsockname()[1])

    assert done.returncode != 0
    assert "address already in use" in done.stderr
    assert leftover.exists()  # a sweep would have removed it
    # No serve.pid (the lock comes after the port), no demo client marker.
    assert sorted(p.name for p in data_dir.iterdir()) == before


def test_the_data_dir_flag_beats_the_environment_for_serve(tmp_path: Path) -> None:
    flagged, from_env = tmp_path / "flagged", tmp_path / "from-env"
    server = Server(
        data_dir=flagged,
        env={"BERKAS_DATA_DIR": str(from_env)},
        args=("--data-dir", str(flagged)),
    )
    server.start()
    try:
        assert f"  data dir:    {flagged}\n" in server.output()
        assert (flagged / "serve.pid").read_text() == f"{server.pid}\n"
        assert (flagged / "berkas.db").is_file()
        assert not from_env.exists()
    finally:
        server.stop()
