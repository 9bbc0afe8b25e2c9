"""Clients cached on each node (docs/design.md 2.1): a client disabled by `berkas clients
disable` (its own process, writing the shared database) is refused on every node of a
PostgreSQL fleet within the cache bound, by its tokens and by its signed requests."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx

from berkas.services.client_cache import CLIENT_CACHE_SECONDS
from tests.support.partner import Partner
from tests.support.postgres import fresh_database
from tests.support.server import Server

MASTER_KEY = base64.b64encode(bytes(range(40, 72))).decode()
FILE = "/adv-core-api/partner/v1.0/file/DCM-0001-0000000000000"
# Polling slack past the bound: a request in flight, a loaded machine.
MARGIN_SECONDS = 5.0


def bearer(partner: Partner, token: str) -> httpx.Response:
    return partner.http.request("GET", FILE, headers={"Authorization": f"Bearer {token}"})


def refused_within(partner: Partner, token: str, deadline: float) -> None:
    """Both the token and a fresh POST /token are refused as disabled before ``deadline``."""
    while True:
        by_token, by_signature = bearer(partner, token), partner.get_token()
        codes = {answer.json().get("error", {}).get("code") for answer in (by_token, by_signature)}
        if codes == {"client_disabled"}:
            return
        assert time.monotonic() < deadline, (by_token.text, by_signature.text)
        time.sleep(0.2)


def test_a_disabled_client_is_refused_on_every_node_within_the_cache_bound(
    tmp_path: Path, e2e_postgres: str
) -> None:
    env = {
        "BERKAS_DATABASE_URL": fresh_database(e2e_postgres, "client_cache"),
        "BERKAS_MASTER_KEY": MASTER_KEY,
        "BERKAS_DEMO_CLIENT": "false",
    }
    one = Server(data_dir=tmp_path / "one", env={**env, "BERKAS_NODE_ID": "1"})
    two = Server(data_dir=tmp_path / "two", env={**env, "BERKAS_NODE_ID": "2"})
    one.start()
    two.start()
    try:
        on_one = one.new_partner()
        on_two = Partner(two.http, on_one.client_id, on_one.secret_key)
        tokens = {}
        for partner in (on_one, on_two):  # both nodes now hold the client in memory
            tokens[id(partner)] = partner.token
            assert bearer(partner, tokens[id(partner)]).status_code == 404  # authenticated

        one.cli("clients", "disable", on_one.client_id)
        deadline = time.monotonic() + CLIENT_CACHE_SECONDS + MARGIN_SECONDS
        # The CLI ran on node one's data dir and touched its marker: refused at once there.
        at_once = bearer(on_one, tokens[id(on_one)])
        assert at_once.status_code == 401, at_once.text
        assert at_once.json()["error"]["code"] == "client_disabled"
        for partner in (on_one, on_two):
            refused_within(partner, tokens[id(partner)], deadline)
    finally:
        two.stop()
        one.stop()
