"""A throwaway Ceph RADOS gateway (S3) for integration tests, started by scripts/ceph-rgw.sh.

One per test session, in a temporary directory, on a free loopback port; objects live in
the OSD's memory and vanish when it stops. Without Ceph installed the tests skip, except
under ``CI=true``, where integration tests must run and so fail instead (as postgres.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixture_server import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ceph-rgw.sh"
# The S3 user the script creates: fixed, test-only keys on a loopback-only gateway.
ACCESS_KEY = "berkastestaccesskey"
SECRET_KEY = "berkastestsecretkey0000000000000000000000"
_BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph-authtool", "monmaptool")


@dataclass(frozen=True)
class Rgw:
    """A running gateway: its endpoint and the test user's keys."""

    endpoint: str
    directory: Path | None = None

    def stop_gateway(self) -> None:
        """Kill radosgw alone (the cluster keeps its objects): the store is unreachable."""
        assert self.directory is not None
        pid = int((self.directory / "run" / "client.rgw.a.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def start_gateway(self) -> None:
        """Start radosgw again (the script starts only what is down) and wait for it."""
        assert self.directory is not None
        port = self.endpoint.rsplit(":", 1)[1]
        _script("start", str(self.directory), port)

    @property
    def env(self) -> dict[str, str]:
        """What a ``berkas`` process needs to reach it (besides BERKAS_STORAGE_URL)."""
        return {
            "BERKAS_S3_ENDPOINT_URL": self.endpoint,
            "BERKAS_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def client(self) -> Any:
        """A plain boto3 client, for set-up and inspection behind the store's back."""
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=30),
        )

    @contextmanager
    def bucket(self) -> Iterator[str]:
        """A fresh, empty bucket, emptied and removed afterwards."""
        name = f"berkas-test-{uuid.uuid4().hex[:16]}"
        s3 = self.client()
        s3.create_bucket(Bucket=name)
        try:
            yield name
        finally:
            remove_bucket(s3, name)


def remove_bucket(s3: Any, name: str) -> None:
    """Empty and delete bucket ``name`` if it is still there."""
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=item["Key"])
        s3.delete_bucket(Bucket=name)
    except s3.exceptions.NoSuchBucket:
        pass


def _script(*args: str) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ceph-rgw.sh {args[0]} failed:\n{done.stdout}{done.stderr}")


def missing_binaries() -> list[str]:
    return [name for name in _BINARIES if shutil.which(name) is None]


@contextmanager
def throwaway_rgw() -> Iterator[Rgw]:
    """Start a gateway in a temporary directory, warm it up, stop and remove it afterwards."""
    missing = missing_binaries()
    if missing:
        message = (
            f"Ceph RGW not installed (no {', '.join(missing)}): make system-deps, or "
            "apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: integration tests must run)")
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="berkas-rgw-"))
    port = free_port()

    run = _script
    try:
        run("start", str(root / "cluster"), str(port))
        rgw = Rgw(f"http://127.0.0.1:{port}", root / "cluster")
        # A fresh gateway creates its data pools on the first write (~2-4 s): pay that
        # here, once, not inside whichever test happens to run first.
        s3 = rgw.client()
        s3.create_bucket(Bucket="berkas-warm-up")
        s3.put_object(Bucket="berkas-warm-up", Key="warm-up", Body=b"x")
        remove_bucket(s3, "berkas-warm-up")
        yield rgw
    finally:
        run("stop", str(root / "cluster"))
        shutil.rmtree(root, ignore_errors=True)
