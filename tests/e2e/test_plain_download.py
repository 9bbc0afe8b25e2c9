"""A document stored as sent (encryption off, nothing to strip) is served from its file by
a real ``berkas serve``: the same headers and bytes as any download (api/file_response.py)."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import samples
from tests.support.server import Server


def test_a_plain_document_on_local_disk_downloads_whole_with_the_usual_headers(
    tmp_path: Path,
) -> None:
    server = Server(data_dir=tmp_path / "data", env={"BERKAS_ENCRYPT_AT_REST": "false"})
    server.start()
    try:
        partner = server.new_partner()
        # Past the spool's memory, no metadata to strip: stored byte for byte as sent.
        content = samples.big_jpeg(3 * 1024 * 1024)
        answer = partner.upload(content, category="PHOTO_PROOF", code=None)
        assert answer.status_code == 200, answer.text
        stored = next(p for p in (server.data_dir / "blobs").rglob("*.jpg"))
        assert stored.read_bytes() == content  # in clear: the file the response sends

        got = httpx.get(answer.json()["link"], timeout=30)

        assert got.status_code == 200
        assert got.content == content
        assert got.headers["content-type"] == "image/jpeg"
        assert got.headers["content-length"] == str(len(content))
        assert got.headers["cache-control"] == "private, no-store"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-disposition"].startswith("inline")
        assert "etag" not in got.headers  # headers as for an encrypted download
        assert "Traceback" not in server.output()
    finally:
        server.stop()
