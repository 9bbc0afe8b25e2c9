"""Node identity across real ``berkas serve`` processes sharing one database (DESIGN 5).

Each node has its own data dir; they share the metadata database (one SQLite file here,
PostgreSQL on a fleet), where node numbers are leased.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import samples
from tests.support.fixture_server import free_port
from tests.support.server import Server


def shared(tmp_path: Path) -> dict[str, str]:
    return {
        "BERKAS_DATABASE_URL": f"sqlite:///{tmp_path / 'shared.db'}",
        # Nodes sharing a database share its master key (DESIGN 5).
        "BERKAS_MASTER_KEY": "bm9kZXMgb2YgYSBmbGVldCBzaGFyZSB0aGlzIGtleSE=",
        "BERKAS_DEMO_CLIENT": "false",
    }


def node(tmp_path: Path, name: str, **env: str) -> Server:
    return Server(data_dir=tmp_path / name, env={**shared(tmp_path), **env})


def serve_refused(tmp_path: Path, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", "serve", "--port", str(free_port())],
        env={
            **os.environ,
            **shared(tmp_path),
            "BERKAS_DATA_DIR": str(tmp_path / name),
            "BERKAS_LOG_LEVEL": "warning",
            # A free port of its own: the default (port + 1000) may be anyone's.
            "BERKAS_METRICS_PORT": str(free_port()),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,  # were it not refused it would serve until killed: fail, do not hang
        check=False,
    )


def test_a_live_nodes_number_is_refused_and_auto_takes_a_free_one(tmp_path: Path) -> None:
    first = node(tmp_path, "node-a", BERKAS_NODE_ID="1")
    first.start()
    try:
        refused = serve_refused(tmp_path, "node-b", BERKAS_NODE_ID="1")
        assert refused.returncode != 0
        assert "node id 1 is held by another live node" in refused.stderr
        assert f"pid {first.pid}" in refused.stderr  # it names the node that holds it
        assert "BERKAS_NODE_ID" in refused.stderr

        second = node(tmp_path, "node-b", BERKAS_NODE_ID="auto")
        second.start()
        try:
            # The lowest free number: 0, since the first node holds 1.
            partner = second.new_partner()
            answer = partner.upload(samples.png(), category="LOGO", code=None)
            assert answer.status_code == 200, answer.text
            assert answer.json()["id"].startswith("DCM-0000-")
            first_answer = first.new_partner().upload(samples.png(), category="LOGO", code=None)
            assert first_answer.json()["id"].startswith("DCM-0001-")
        finally:
            second.stop()
    finally:
        first.stop()

    # A clean stop gives the number up at once: a new node may take 1 straight away.
    third = node(tmp_path, "node-c", BERKAS_NODE_ID="1")
    third.start()
    try:
        answer = third.new_partner().upload(samples.png(), category="LOGO", code=None)
        assert answer.json()["id"].startswith("DCM-0001-")
    finally:
        third.stop()


def test_a_killed_node_restarts_with_its_number_at_once(tmp_path: Path) -> None:
    crashed = node(tmp_path, "node-a", BERKAS_NODE_ID="5")
    crashed.start()
    crashed.kill9()  # its lease is still live for up to 30 s
    # Another data dir must wait for the lease to lapse...
    refused = serve_refused(tmp_path, "node-b", BERKAS_NODE_ID="5")
    assert refused.returncode != 0
    assert "node id 5 is held" in refused.stderr
    # ...but the same node, on its own data dir, takes its lease straight back.
    crashed.start()
    try:
        answer = crashed.new_partner().upload(samples.png(), category="LOGO", code=None)
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"].startswith("DCM-0005-")
    finally:
        crashed.stop()


def test_a_copied_data_dir_is_another_node(tmp_path: Path) -> None:
    # A snapshot of a live node's data dir (same node-identity file) started elsewhere
    # must not inherit the number the original still holds.
    original = node(tmp_path, "node-a", BERKAS_NODE_ID="3")
    original.start()
    try:
        shutil.copytree(tmp_path / "node-a", tmp_path / "node-a-copy")
        refused = serve_refused(tmp_path, "node-a-copy", BERKAS_NODE_ID="3")
        assert refused.returncode != 0
        assert "node id 3 is held by another live node" in refused.stderr
    finally:
        original.stop()
