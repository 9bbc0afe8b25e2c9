"""What only the local disk store promises: atomic, private files and crash recovery."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from berkas.adapters.storage.local import LocalBlobStore
from berkas.core.errors import InvalidRequest, Unavailable

KEY = "berkas/sandbox/TEMP/BRN-0001-10791114622547/DOCUMENT/1740817815123.jpg"


def test_relative_root_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        LocalBlobStore(Path("data/blobs"))


def test_put_leaves_no_temporary_file(local_blob_store: LocalBlobStore, spool: Path) -> None:
    (spool / "upload").write_bytes(b"data")

    local_blob_store.put_file(KEY, spool / "upload", "image/jpeg")

    assert list((local_blob_store.root / ".tmp").iterdir()) == []
    assert (local_blob_store.root / KEY).read_bytes() == b"data"


def test_files_and_directories_are_private(local_blob_store: LocalBlobStore, spool: Path) -> None:
    (spool / "upload").write_bytes(b"data")
    (spool / "upload").chmod(0o644)

    local_blob_store.put_file(KEY, spool / "upload", "image/jpeg")

    root = local_blob_store.root
    assert stat.S_IMODE((root / KEY).stat().st_mode) == 0o600
    directories = [root, *(path for path in root.rglob("*") if path.is_dir())]
    assert {stat.S_IMODE(path.stat().st_mode) for path in directories} == {0o700}


def test_copies_from_another_file_system(tmp_path: Path) -> None:
    # tmpfs is a different device from the test's temporary directory, so the store must
    # copy rather than rename; mkdtemp keeps the name private.
    shm = Path("/dev/shm")  # noqa: S108
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on a file system other than the temporary directory")
    store = LocalBlobStore(tmp_path / "blobs")
    with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
        source = Path(elsewhere) / "upload"
        source.write_bytes(b"across devices")

        store.put_file(KEY, source, "image/jpeg")

    assert b"".join(store.open(KEY)) == b"across devices"
    assert stat.S_IMODE((store.root / KEY).stat().st_mode) == 0o600


def test_cleanup_temp_removes_leftovers(local_blob_store: LocalBlobStore) -> None:
    temp = local_blob_store.root / ".tmp"
    (temp / "half-written").write_bytes(b"partial")
    (temp / "stray-dir").mkdir()
    (temp / "stray-dir" / "inner").write_bytes(b"x")

    assert local_blob_store.cleanup_temp() == 2
    assert list(temp.iterdir()) == []
    assert local_blob_store.cleanup_temp() == 0


def test_crash_before_publishing_leaves_nothing_at_the_key(tmp_path: Path) -> None:
    root, source = tmp_path / "blobs", tmp_path / "upload"
    source.write_bytes(b"x" * 100_000)
    # The child dies by SIGKILL at the moment it would publish the file under its key,
    # as a power cut or OOM kill would stop it.
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from berkas.adapters.storage.local import LocalBlobStore

        store = LocalBlobStore(Path({str(root)!r}))
        os.link = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
        store.put_file({KEY!r}, Path({str(source)!r}), "image/jpeg")
        """
    )
    child = subprocess.run([sys.executable, "-c", script], check=False, timeout=60)

    assert child.returncode == -9
    assert not (root / KEY).exists()
    store = LocalBlobStore(root)
    assert store.cleanup_temp() == 1
    replacement = tmp_path / "retry"
    replacement.write_bytes(b"retried")
    store.put_file(KEY, replacement, "image/jpeg")
    assert b"".join(store.open(KEY)) == b"retried"


def test_symlink_out_of_the_root_is_refused(
    local_blob_store: LocalBlobStore, spool: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (local_blob_store.root / "escape").symlink_to(outside, target_is_directory=True)
    (spool / "upload").write_bytes(b"data")

    with pytest.raises(InvalidRequest) as caught:
        local_blob_store.put_file("escape/file.jpg", spool / "upload", "image/jpeg")

    assert caught.value.code == "invalid_key"
    assert list(outside.iterdir()) == []


def test_vanished_root_is_unavailable(local_blob_store: LocalBlobStore, spool: Path) -> None:
    shutil.rmtree(local_blob_store.root)
    (spool / "upload").write_bytes(b"data")

    with pytest.raises(Unavailable) as caught:
        local_blob_store.check()
    assert caught.value.code == "storage_unavailable"

    with pytest.raises(Unavailable) as caught:
        local_blob_store.put_file(KEY, spool / "upload", "image/jpeg")
    assert not local_blob_store.root.exists()
    # The message reaches the wire: it names no server path (the log has it).
    assert str(local_blob_store.root) not in caught.value.message


# --- staging (core.ports.StagingBlobStore), for the one-round upload ------------------------


def _spooled(spool: Path, content: bytes) -> Path:
    path = spool / "upload-staged.part"
    path.write_bytes(content)
    return path


def test_staged_bytes_are_durable_but_not_at_their_key_until_published(
    local_blob_store: LocalBlobStore, spool: Path
) -> None:
    key = "berkas/sandbox/TEMP/C/LOGO/1-0001.png"
    source = _spooled(spool, b"staged bytes")

    local_blob_store.stage("DCM-0001-1", source)

    assert not source.exists()  # moved, not copied
    assert local_blob_store.staged() == ["DCM-0001-1"]
    with pytest.raises(Exception, match="No stored file"):
        local_blob_store.open(key)
    local_blob_store.publish("DCM-0001-1", key)
    assert b"".join(local_blob_store.open(key)) == b"staged bytes"
    assert local_blob_store.staged() == []
    assert stat.S_IMODE((local_blob_store.root / key).stat().st_mode) == 0o600
    local_blob_store.publish("DCM-0001-1", key)  # a recovery repeating itself: a no-op
    assert b"".join(local_blob_store.open(key)) == b"staged bytes"


def test_a_start_keeps_staged_bytes_for_recovery_and_clears_the_rest(
    local_blob_store: LocalBlobStore, spool: Path
) -> None:
    local_blob_store.stage("DCM-0001-2", _spooled(spool, b"x"))
    (local_blob_store.root / ".tmp" / "0123abcd").write_bytes(b"a cut-off put")

    assert local_blob_store.cleanup_temp() == 1

    assert local_blob_store.staged() == ["DCM-0001-2"]
    local_blob_store.drop_staged("DCM-0001-2")
    local_blob_store.drop_staged("DCM-0001-2")  # nothing there: not an error
    assert local_blob_store.staged() == []
    assert list((local_blob_store.root / ".tmp").iterdir()) == []


def test_unstage_gives_the_bytes_back(local_blob_store: LocalBlobStore, spool: Path) -> None:
    source = _spooled(spool, b"again")
    local_blob_store.stage("DCM-0001-3", source)

    local_blob_store.unstage("DCM-0001-3", source)

    assert source.read_bytes() == b"again"
    assert local_blob_store.staged() == []


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".staged", "x" * 101, "DCM 1"])
def test_a_staging_name_is_a_file_id_never_a_path(
    local_blob_store: LocalBlobStore, spool: Path, name: str
) -> None:
    with pytest.raises(ValueError, match="staging name"):
        local_blob_store.stage(name, _spooled(spool, b"x"))
