"""Two `berkas serve` nodes on one PostgreSQL and one Ceph RGW (DESIGN 5).

Nodes share the database, the object store and the master key, nothing else: signing
keys, the link secret and client secrets are in the database, sealed under the master
key, so a token, a link or a client made through one node works on the other.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest

from berkas.core import signing
from tests.support import samples
from tests.support.errors import assert_error
from tests.support.partner import PREFIX, TOKEN_PATH, Partner, until_token_refused
from tests.support.postgres import fresh_database
from tests.support.rgw import Rgw
from tests.support.server import Server

# What an operator gives every node (`openssl rand -base64 32`).
MASTER_KEY = base64.b64encode(bytes(range(100, 132))).decode()


@pytest.fixture
def fleet(
    tmp_path: Path, rgw: Rgw, e2e_postgres: str, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """The environment every node of one fleet shares: a fresh database and bucket."""
    with rgw.bucket() as bucket:
        yield {
            **rgw.env,
            "BERKAS_DATABASE_URL": fresh_database(
                e2e_postgres, f"fleet_{request.node.name[-30:]}".lower()
            ),
            "BERKAS_STORAGE_URL": f"s3://{bucket}/fleet",
            "BERKAS_MASTER_KEY": MASTER_KEY,
            "BERKAS_DEMO_CLIENT": "false",
        }


def start_together(*nodes: Server) -> None:
    # At the same moment on an empty database: migrations and node leases must not race.
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.start(), nodes))


def node(tmp_path: Path, fleet: dict[str, str], name: str, node_id: str) -> Server:
    return Server(data_dir=tmp_path / name, env={**fleet, "BERKAS_NODE_ID": node_id})


def partner_on(server: Server, client_id: str, secret: str) -> Partner:
    return Partner(server.http, client_id, secret)


def test_two_nodes_share_files_ids_replays_and_clients(
    tmp_path: Path, fleet: dict[str, str], rgw: Rgw
) -> None:
    one, two = node(tmp_path, fleet, "one", "1"), node(tmp_path, fleet, "two", "2")
    start_together(one, two)
    try:
        created = json.loads(one.cli("clients", "create", "--json"))
        on_one = partner_on(one, created["client_id"], created["secret_key"])
        on_two = partner_on(two, created["client_id"], created["secret_key"])

        # A token node 1 issued is accepted by node 2.
        from_one = {"Authorization": f"Bearer {on_one.token}"}
        answer = on_two.http.request(
            "GET", f"{PREFIX}/file/DCM-0001-0000000000000", headers=from_one
        )
        assert_error(answer, 404, "file_not_found")  # authenticated; no such file

        # Node 1's upload is described and downloaded through node 2.
        first = on_one.upload(samples.jpeg(seed=1), category="LOGO", code=None).json()
        meta = on_two.http.request("GET", f"{PREFIX}/file/{first['id']}", headers=on_two.auth())
        assert meta.status_code == 200, meta.text
        via_two = first["link"].replace(one.url, two.url)
        assert httpx.get(via_two, timeout=30).content == samples.jpeg(seed=1)

        # 300 concurrent uploads spread over both: distinct ids carrying their node.
        def upload(i: int) -> tuple[int, dict[str, str]]:
            partner = (on_one, on_two)[i % 2]
            answer = partner.upload(samples.png(seed=i), category="LOGO", code=None)
            assert answer.status_code == 200, answer.text
            return i, answer.json()

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(upload, range(300)))
        ids = [body["id"] for _, body in results]
        assert len(set(ids)) == 300
        for i, body in results:
            assert body["id"].startswith(("DCM-0001-", "DCM-0002-")[i % 2])
        objects = rgw.client().list_objects_v2(Bucket=fleet["BERKAS_STORAGE_URL"][5:].split("/")[0])
        assert objects["KeyCount"] == 301
        for i, body in results[::10]:
            assert httpx.get(body["link"], timeout=30).content == samples.png(seed=i)

        # One Request-Id sent to both nodes at once: one 200, one 409 (DOKU's rule).
        payload = json.dumps({"grant_type": "client_credentials"}).encode()
        headers = signing.signed_headers(
            client_id=created["client_id"],
            secret_key=created["secret_key"],
            target=TOKEN_PATH,
            body=payload,
        )
        headers["Content-Type"] = "application/json"
        barrier = threading.Barrier(2)

        def token_from(server: Server) -> int:
            barrier.wait()
            return httpx.post(server.url + TOKEN_PATH, content=payload, headers=headers).status_code

        with ThreadPoolExecutor(2) as pool:
            assert sorted(pool.map(token_from, (one, two))) == [200, 409]

        # `keys rotate` on one node: within seconds both sign with the new key, and a
        # token the old key signed keeps working on both until it expires.
        old_token = on_one.token
        old_kid = jwt.get_unverified_header(old_token)["kid"]
        new_kid = two.cli("keys", "rotate").split()[3].rstrip(";")
        assert new_kid != old_kid
        for server in (one, two):
            deadline = time.monotonic() + 15
            while True:
                fresh = partner_on(server, created["client_id"], created["secret_key"])
                if jwt.get_unverified_header(fresh.token)["kid"] == new_kid:
                    break
                assert time.monotonic() < deadline, f"{server.url} still signs with {old_kid}"
                time.sleep(0.5)
            jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()["keys"]
            assert [key["kid"] for key in jwks] == [new_kid, old_kid]
            for token in (old_token, fresh.token):
                still = server.http.request(
                    "GET",
                    f"{PREFIX}/file/{first['id']}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert still.status_code == 200, still.text

        # Disabling the client on one node stops its tokens on both, within the client
        # cache's bound (docs/design.md 2.1).
        one.cli("clients", "disable", created["client_id"])
        for partner in (on_one, on_two):
            until_token_refused(partner.http, partner.token)
        for partner in (on_one, on_two):
            refused = partner.upload(samples.png(), category="LOGO", code=None)
            assert_error(refused, 401, "client_disabled")

        # A third node configured with a live node's id refuses to start.
        third = node(tmp_path, fleet, "three", "1")
        with pytest.raises(AssertionError, match="node id 1 is held by another live node"):
            third.start(timeout=30, attempts=1)
    finally:
        one.stop()
        two.stop()


def test_kill_9_one_node_under_load_the_other_keeps_answering(
    tmp_path: Path, fleet: dict[str, str]
) -> None:
    one, two = node(tmp_path, fleet, "one", "1"), node(tmp_path, fleet, "two", "2")
    start_together(one, two)
    try:
        created = json.loads(one.cli("clients", "create", "--json"))
        on_one = partner_on(one, created["client_id"], created["secret_key"])
        on_two = partner_on(two, created["client_id"], created["secret_key"])
        on_one.token, on_two.token  # noqa: B018 - taken before the load starts
        acknowledged: list[tuple[int, str]] = []
        lock = threading.Lock()
        stop = threading.Event()

        def load(worker: int) -> None:
            i = worker
            while not stop.is_set():
                partner = on_one if i % 2 else on_two
                try:
                    answer = partner.upload(samples.png(seed=i), category="LOGO", code=None)
                except httpx.TransportError:
                    assert partner is on_one  # only the killed node may fail to answer
                else:
                    if partner is on_two:
                        assert answer.status_code == 200, answer.text
                    if answer.status_code == 200:
                        with lock:
                            acknowledged.append((i, answer.json()["id"]))
                i += 8

        def wait_for(count: int) -> None:
            deadline = time.monotonic() + 120
            while len(acknowledged) < count:
                # A failed worker (its assertion) ends the wait: fail, never hang.
                if any(future.done() for future in running) or time.monotonic() > deadline:
                    stop.set()
                    break
                time.sleep(0.05)

        with ThreadPoolExecutor(8) as pool:
            running = [pool.submit(load, worker) for worker in range(8)]
            wait_for(40)
            one.kill9()
            before = len(acknowledged)
            wait_for(before + 40)  # node two goes on answering 200
            stop.set()
            for future in running:
                future.result()
        assert len(acknowledged) >= before + 40

        one.start()  # the killed node takes its own id straight back
        answer = on_one.upload(samples.png(seed=10_000), category="LOGO", code=None)
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"].startswith("DCM-0001-")
        for i, file_id in acknowledged:
            meta = on_two.http.request("GET", f"{PREFIX}/file/{file_id}", headers=on_two.auth())
            assert meta.status_code == 200, meta.text
            assert meta.json()["sha256"] == samples.sha256(samples.png(seed=i))
        sample = acknowledged[:: max(1, len(acknowledged) // 20)]
        for i, file_id in sample:
            meta = on_two.http.request("GET", f"{PREFIX}/file/{file_id}", headers=on_two.auth())
            assert httpx.get(meta.json()["link"], timeout=30).content == samples.png(seed=i)
    finally:
        one.stop()
        two.stop()


def test_nodes_started_together_on_loopback_make_one_demo_client(
    tmp_path: Path, fleet: dict[str, str]
) -> None:
    # As a laptop fleet starts: every node on loopback, so each would make a demo client.
    demo = {**fleet, "BERKAS_DEMO_CLIENT": "true"}
    one, two = node(tmp_path, demo, "one", "1"), node(tmp_path, demo, "two", "2")
    start_together(one, two)
    try:
        (client,) = json.loads(one.cli("clients", "list", "--json"))
        client_id = client["client_id"]
        made, found = sorted((one, two), key=lambda n: "Secret key:" not in n.output())
        # One node shows the secret, once; the other names the same client and no secret.
        assert made.output().count("Secret key: SK-") == 1, made.output()
        assert f"Client-Id:  {client_id}" in made.output()
        assert "Secret key" not in found.output()
        assert (
            f"This database's demo partner client is {client_id}; another node created it "
            "and showed its secret key once."
        ) in found.output()
        assert f"clients rotate-secret {client_id}" in found.output()

        # A third node, later, on a new data dir: the same, still one client.
        three = node(tmp_path, demo, "three", "3")
        three.start()
        try:
            assert f"demo partner client is {client_id};" in three.output()
            assert len(json.loads(three.cli("clients", "list", "--json"))) == 1
        finally:
            three.stop()
    finally:
        one.stop()
        two.stop()
