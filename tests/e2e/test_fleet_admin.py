"""Admin commands against a fleet's database and store with no local data dir (README
"Admin on a fleet"): with BERKAS_DATABASE_URL (PostgreSQL), BERKAS_STORAGE_URL (S3, a
real Ceph RGW) and the master key in the environment, ``berkas clients ...`` and the
other admin verbs run from an empty directory, create nothing there, and what they do is
seen by a serving node of the fleet."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import samples
from tests.support.partner import Partner
from tests.support.postgres import fresh_database
from tests.support.rgw import Rgw
from tests.support.server import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MASTER_KEY = base64.b64encode(bytes(range(90, 122))).decode()


@pytest.fixture(scope="module")
def fleet(e2e_postgres: str, rgw: Rgw) -> Iterator[dict[str, str]]:
    """What every node and admin of the fleet is given: database, store, master key."""
    with rgw.bucket() as bucket:
        yield {
            "BERKAS_DATABASE_URL": fresh_database(e2e_postgres, "fleet_admin"),
            "BERKAS_STORAGE_URL": f"s3://{bucket}/fleet",
            "BERKAS_MASTER_KEY": MASTER_KEY,
            "BERKAS_DEMO_CLIENT": "false",
            **rgw.env,
        }


@pytest.fixture(scope="module")
def node(fleet: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(data_dir=tmp_path_factory.mktemp("node") / "data", env=fleet)
    srv.start()
    yield srv
    srv.stop()


def admin(where: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``berkas ARGS`` run in the empty directory ``where``, no BERKAS_DATA_DIR set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BERKAS_")}
    return subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", *args],
        cwd=where,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_clients_are_managed_without_a_data_dir(
    node: Server, fleet: dict[str, str], rgw: Rgw, tmp_path: Path
) -> None:
    bucket_url = fleet["BERKAS_STORAGE_URL"]

    created = admin(tmp_path, fleet, "clients", "create", "--label", "Toko Armada", "--json")
    assert created.returncode == 0, created.stderr
    client = json.loads(created.stdout)
    # It says it used no data dir, and where it acted; the password is never printed.
    assert f"data dir: none (not needed)  store: {bucket_url}  database: postgresql" in (
        created.stderr
    )
    assert "created a new berkas data dir" not in created.stderr
    listed = admin(tmp_path, fleet, "clients", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {"client_id": client["client_id"], "label": "Toko Armada"}.items() <= next(
        c for c in json.loads(listed.stdout) if c["client_id"] == client["client_id"]
    ).items()
    for verb in (("keys", "list"), ("secrets", "status"), ("db", "migrate")):
        done = admin(tmp_path, fleet, *verb)
        assert done.returncode == 0, (verb, done.stderr)

    # Nothing was created where the commands ran (no ./berkas-data, no SQLite file).
    assert list(tmp_path.iterdir()) == []
    # The serving node takes the new partner's signed requests at once (a new client is
    # never in any node's cache) and stores its upload in the fleet's bucket.
    partner = Partner(node.http, client["client_id"], client["secret_key"])
    uploaded = partner.upload(samples.jpeg(120, 80, seed=5), category="PHOTO_PROOF")
    assert uploaded.status_code == 200, uploaded.text
    bucket = bucket_url.removeprefix("s3://").split("/")[0]
    keys = [o["Key"] for o in rgw.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(client["client_id"] in key for key in keys), keys


def test_without_the_master_key_the_data_dir_is_still_needed(
    node: Server, fleet: dict[str, str], tmp_path: Path
) -> None:
    # The master key is what the embedded default keeps in the data dir: without it set,
    # the command looks for that data dir and says so, creating nothing.
    env = {k: v for k, v in fleet.items() if k != "BERKAS_MASTER_KEY"}

    listed = admin(tmp_path, env, "clients", "list")

    assert listed.returncode == 1
    assert f"no berkas data dir at {tmp_path.resolve() / 'berkas-data'}" in listed.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_master_key_is_refused_without_writing(
    node: Server, fleet: dict[str, str], tmp_path: Path
) -> None:
    wrong = {**fleet, "BERKAS_MASTER_KEY": base64.b64encode(bytes(32)).decode()}

    created = admin(tmp_path, wrong, "clients", "create", "--json")

    assert created.returncode == 1
    assert created.stdout == ""
    # The fleet's secrets are sealed under a key this command does not have: it says so.
    assert "which this node does not have" in created.stderr
    assert "Traceback" not in created.stderr
    assert list(tmp_path.iterdir()) == []
