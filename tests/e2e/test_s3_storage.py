"""A real ``berkas serve`` keeping its blobs on S3 (a throwaway Ceph RGW)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import samples
from tests.support.fixture_server import free_port
from tests.support.rgw import Rgw, remove_bucket
from tests.support.server import Server, cli


def test_upload_to_s3_and_download_through_the_proxy_link(rgw: Rgw, tmp_path: Path) -> None:
    bucket = f"berkas-e2e-{time.monotonic_ns()}"
    env = {**rgw.env, "BERKAS_STORAGE_URL": f"s3://{bucket}/sandbox"}
    data_dir = tmp_path / "data"
    s3 = rgw.client()
    try:
        # Without its bucket the server refuses to start, saying which and where.
        refused = subprocess.run(
            [sys.executable, "-m", "berkas.cli.main", "serve", "--port", str(free_port())],
            env={**os.environ, "BERKAS_DATA_DIR": str(data_dir), **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert refused.returncode != 0
        assert f"S3 bucket {bucket!r} at {rgw.endpoint} does not exist" in refused.stderr
        assert "Traceback" not in refused.stderr

        assert f"created S3 bucket {bucket!r}" in cli(data_dir, "storage", "init", env=env)
        assert "already exists" in cli(data_dir, "storage", "init", env=env)

        server = Server(data_dir=data_dir, env=env)
        server.start()
        try:
            partner = server.new_partner()
            content = samples.jpeg(seed=7)

            response = partner.upload(content, filename="ktp.jpg")

            assert response.status_code == 200, response.text
            body = response.json()
            assert body["link"].startswith(server.url)
            downloaded = httpx.get(body["link"], timeout=30)
            assert downloaded.status_code == 200
            assert downloaded.content == content
            listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
            assert [item["Key"].split("/")[0] for item in listed] == ["sandbox"]
            assert not (data_dir / "blobs").exists()
        finally:
            server.stop()
    finally:
        remove_bucket(s3, bucket)
