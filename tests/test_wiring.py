"""The composition root: what a start does to the data directory, and what it refuses."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from berkas.config import load_settings
from berkas.wiring import build, ensure_demo_client


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_only_the_serving_process_sweeps_partial_uploads(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    build(settings).close()
    in_flight = settings.spool_dir / "upload-inflight.part"
    in_flight.write_bytes(b"half an upload")

    # An admin command (berkas clients list) beside a live server leaves its uploads be.
    build(settings).close()
    assert in_flight.exists()

    build(settings, serving=True).close()  # a (re)starting server: leftovers are a crash's
    assert not in_flight.exists()


def test_the_data_dir_and_database_are_private_even_if_made_by_hand(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    build(load_settings(data_dir=data)).close()
    assert _mode(data) == 0o700
    assert _mode(data / "berkas.db") & 0o077 == 0
    assert _mode(data / "link-secret") == 0o600


def test_a_relative_file_storage_url_is_refused(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "d", storage_url="file://relative/path")
    with pytest.raises(ValueError, match="absolute path"):
        build(settings)


@pytest.mark.parametrize(("host", "created"), [("127.0.0.1", True), ("192.0.2.10", False)])
def test_the_demo_client_is_made_only_for_a_loopback_server(
    tmp_path: Path, host: str, created: bool
) -> None:
    container = build(load_settings(data_dir=tmp_path / "d", host=host))
    try:
        assert (ensure_demo_client(container) is not None) is created
        assert ensure_demo_client(container) is None  # never a second time
    finally:
        container.close()


def test_an_explicit_demo_setting_wins(tmp_path: Path) -> None:
    container = build(load_settings(data_dir=tmp_path / "d", host="192.0.2.10", demo_client=True))
    try:
        assert ensure_demo_client(container) is not None
    finally:
        container.close()
