"""``make profile``'s summary: py-spy's collapsed stacks sorted into buckets, waits dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profile import bucket_of, cpu_shares, is_idle, summarise

DECODE = (
    "Thread._bootstrap (threading.py:1002);UploadService._examine (berkas/services/uploads.py:313)"
    ";inspect (berkas/core/content.py:113);ImageFile.load (PIL/ImageFile.py:296)"
)
COMMIT_FSYNC = (
    "GroupCommit._run (berkas/adapters/db/writes.py:146);Connection.commit (sqlalchemy/engine/"
    "base.py:1)"
)
BLOB_FSYNC = (
    "DocumentStore._staged (berkas/services/documents.py:181);LocalBlobStore.stage "
    "(berkas/adapters/storage/local.py:95);fsync_file (berkas/adapters/durable.py:12)"
)
WAITING = "WorkerThread.run (anyio/_backends/_asyncio.py:1113);Condition.wait (threading.py:327)"


@pytest.mark.parametrize(
    ("stack", "bucket"),
    [
        (DECODE, "image decode check"),
        # SQLite's commit syncs too, but it is the database's time, not the blob's.
        (COMMIT_FSYNC, "SQL statements and commits"),
        (BLOB_FSYNC, "fsync (blob and directory; I/O wait)"),
        ("Server.run (uvicorn/server.py:86)", "event loop, middleware, ASGI"),
        ("somewhere (elsewhere.py:1)", "other"),
    ],
)
def test_a_stack_lands_in_its_narrowest_bucket(stack: str, bucket: str) -> None:
    assert bucket_of(stack) == bucket


def test_waits_are_idle_and_left_out_of_the_shares(tmp_path: Path) -> None:
    collapsed = tmp_path / "profile.txt"
    collapsed.write_text(f"{DECODE} 30\n{BLOB_FSYNC} 50\n{COMMIT_FSYNC} 20\n{WAITING} 900\n")

    assert is_idle(WAITING)
    assert not is_idle(DECODE)
    shares = dict(summarise(collapsed))
    assert shares == {
        "fsync (blob and directory; I/O wait)": 0.5,
        "image decode check": 0.3,
        "SQL statements and commits": 0.2,
    }
    # Without the I/O wait: where the CPU goes.
    assert dict(cpu_shares(list(shares.items()))) == {
        "image decode check": pytest.approx(0.6),
        "SQL statements and commits": pytest.approx(0.4),
    }
