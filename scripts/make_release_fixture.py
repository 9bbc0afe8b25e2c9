"""Make tests/fixtures/release-d954291: a data dir written by berkas as released at commit
d954291 (schema 0005: documents in clear, metadata kept, no retention date).

Run from the repository root with the project's venv: python scripts/make_release_fixture.py
It checks the old release out with `git archive`, runs its own `berkas serve` and
`berkas clients create`, uploads three documents through the wire API, and keeps the
data dir (database checkpointed into one file, blobs, master key) and a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import samples  # noqa: E402
from tests.support.fixture_server import free_port  # noqa: E402
from tests.support.partner import Partner  # noqa: E402
from tests.support.server import Loopback  # noqa: E402

RELEASE = "d954291"
OUT = ROOT / "tests" / "fixtures" / f"release-{RELEASE}"
DOCUMENTS = {
    "photo": (samples.gps_jpeg(seed=41), "photo.jpg", "DOCUMENT", "KTP"),
    "logo": (samples.png(seed=42), "logo.png", "LOGO", None),
    "agreement": (samples.pdf(pages=2), "agreement.pdf", "SERVICE_AGREEMENT", None),
}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="berkas-release-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", RELEASE, "src"], check=True, capture_output=True
    ).stdout
    (work / "release.tar").write_bytes(archive)
    with tarfile.open(work / "release.tar") as tar:
        tar.extractall(work / "release", filter="data")
    data = work / "data"
    env = {**os.environ, "PYTHONPATH": str(work / "release" / "src"), "BERKAS_DATA_DIR": str(data)}
    env.pop("BERKAS_DATABASE_URL", None)
    port = free_port()

    def berkas(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "berkas.cli.main", *args],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        )
        return done.stdout

    server = subprocess.Popen(
        [sys.executable, "-m", "berkas.cli.main", "serve", "--port", str(port)],
        env={**env, "BERKAS_DEMO_CLIENT": "false", "BERKAS_METRICS_PORT": str(free_port())},
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        created = json.loads(berkas("clients", "create", "--json"))
        partner = Partner(Loopback(base), created["client_id"], created["secret_key"])
        manifest = {"release": RELEASE, "client_id": created["client_id"],
                    "secret_key": created["secret_key"], "documents": {}}
        for name, (body, filename, category, code) in DOCUMENTS.items():
            answer = partner.upload(body, filename=filename, category=category, code=code)
            assert answer.status_code == 200, answer.text
            stored = answer.json()
            manifest["documents"][name] = {
                "id": stored["id"], "category": category, "code": code,
                "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
            }
    finally:
        server.terminate()
        server.wait(timeout=30)
    with sqlite3.connect(data / "berkas.db") as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    shutil.copy2(data / "berkas.db", OUT / "berkas.db")
    shutil.copy2(data / "master-key", OUT / "master-key")
    shutil.copytree(data / "blobs", OUT / "blobs", ignore=shutil.ignore_patterns(".tmp"))
    for name, (body, *_rest) in DOCUMENTS.items():
        (OUT / f"{name}.original").write_bytes(body)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(work)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
