"""What only the S3 store promises: keys under the bucket prefix, clear start-up errors,
bounded waits on a dead store, and wire messages that never name the endpoint."""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from berkas import install_hint
from berkas.adapters.storage.s3 import S3BlobStore, S3Location
from berkas.config import load_settings
from berkas.core.errors import Conflict, Unavailable
from berkas.wiring import init_storage, prepare
from tests.adapters.storage.conftest import s3_store
from tests.support.fixture_server import free_port
from tests.support.rgw import Rgw

KEY = "berkas/sandbox/TEMP/BRN-0001-10791114622547/DOCUMENT/1740817815123.jpg"


@pytest.fixture(autouse=True)
def aws_keys(rgw: Rgw, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in rgw.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


@pytest.fixture
def bucket(rgw: Rgw) -> Iterator[str]:
    with rgw.bucket() as name:
        yield name


def upload(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"upload-{time.monotonic_ns()}"
    path.write_bytes(data)
    return path


def test_objects_land_under_the_prefix_with_their_content_type(
    rgw: Rgw, bucket: str, tmp_path: Path
) -> None:
    store = s3_store(rgw, bucket)

    store.put_file(KEY, upload(tmp_path, b"\xff\xd8jpeg"), "image/jpeg")

    head = rgw.client().head_object(Bucket=bucket, Key=f"tenant/a/{KEY}")
    assert head["ContentType"] == "image/jpeg"
    assert head["ContentLength"] == 6


def test_a_key_written_behind_the_store_is_still_refused(
    rgw: Rgw, bucket: str, tmp_path: Path
) -> None:
    # Another node (or an operator) wrote the object: the conditional PUT refuses it.
    rgw.client().put_object(Bucket=bucket, Key=f"tenant/a/{KEY}", Body=b"theirs")
    store = s3_store(rgw, bucket)

    with pytest.raises(Conflict) as caught:
        store.put_file(KEY, upload(tmp_path, b"ours"), "image/jpeg")

    assert caught.value.code == "duplicate_key"
    assert b"".join(store.open(KEY)) == b"theirs"


def test_a_missing_bucket_stops_start_up_naming_bucket_and_endpoint(
    rgw: Rgw, tmp_path: Path
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        storage_url="s3://no-such-bucket-here/docs",
        s3_endpoint_url=rgw.endpoint,
        s3_addressing_style="path",
    )

    with pytest.raises(Unavailable) as caught:
        prepare(settings, serving=False)

    assert caught.value.code == "storage_unavailable"
    assert "'no-such-bucket-here'" in caught.value.message
    assert rgw.endpoint in caught.value.message
    assert "berkas storage init" in caught.value.message


def test_wrong_credentials_stop_start_up_pointing_at_them(
    rgw: Rgw, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all-0000000000000000000")
    store = s3_store(rgw, bucket)

    with pytest.raises(Unavailable) as caught:
        store.require_bucket()

    assert "refuses these credentials" in caught.value.message
    assert "not-the-secret" not in caught.value.message


def test_storage_init_creates_the_bucket_once_then_start_up_passes(
    rgw: Rgw, tmp_path: Path
) -> None:
    name = f"berkas-init-{time.monotonic_ns()}"
    settings = load_settings(
        data_dir=tmp_path / "data",
        storage_url=f"s3://{name}/docs",
        s3_endpoint_url=rgw.endpoint,
        s3_addressing_style="path",
    )
    try:
        assert init_storage(settings).startswith(f"created S3 bucket {name!r}")
        assert init_storage(settings).endswith("already exists")

        prepare(settings, serving=True).close()
    finally:
        rgw.client().delete_bucket(Bucket=name)


def test_check_fails_once_the_bucket_is_deleted(rgw: Rgw, bucket: str) -> None:
    store = s3_store(rgw, bucket)
    store.check()

    rgw.client().delete_bucket(Bucket=bucket)

    with pytest.raises(Unavailable) as caught:
        store.check()
    assert caught.value.code == "storage_unavailable"
    assert bucket not in caught.value.message


def test_an_unreachable_endpoint_is_storage_unavailable_without_naming_it(
    tmp_path: Path,
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3BlobStore(_location(endpoint), connect_timeout=1, read_timeout=1)
    started = time.monotonic()

    for attempt in (
        store.check,
        lambda: store.open(KEY),
        lambda: store.put_file(KEY, upload(tmp_path, b"x"), "image/jpeg"),
        lambda: store.delete(KEY),
    ):
        with pytest.raises(Unavailable) as caught:
            attempt()
        assert caught.value.code == "storage_unavailable"
        assert "127.0.0.1" not in caught.value.message

    assert time.monotonic() - started < 20


def test_a_store_that_never_answers_fails_within_the_read_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never replies
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = S3BlobStore(_location(endpoint), connect_timeout=1, read_timeout=1, max_attempts=2)
        started = time.monotonic()

        with pytest.raises(Unavailable) as caught:
            store.open(KEY)

    assert caught.value.code == "storage_unavailable"
    assert time.monotonic() - started < 10


def test_a_missing_boto3_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    monkeypatch.delitem(sys.modules, "berkas.adapters.storage.s3")
    settings = load_settings(data_dir=tmp_path / "data", storage_url="s3://some-bucket/docs")

    with pytest.raises(ValueError, match=re.escape(install_hint("s3"))):
        init_storage(settings)


def _location(endpoint: str) -> S3Location:
    return S3Location(bucket="berkas-docs", endpoint_url=endpoint, addressing_style="path")
