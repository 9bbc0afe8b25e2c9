"""Secrets at rest (DESIGN 5): client secrets, signing keys and the link secret are in the
database sealed under the master key, so a dump of it gives none of them away; an older
data dir upgrades in place without breaking a token, a client or a link; the master key
can be changed with ``berkas secrets rekey``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from berkas.adapters.clock import SystemClock
from berkas.adapters.db.memory import MemoryDatabase, MemoryKeyStore
from berkas.adapters.keys import KeyRing, StoredKey
from berkas.core.links import LinkSigner
from berkas.core.models import Client
from berkas.services.tokens import TokenService
from tests.support import samples
from tests.support.errors import assert_error
from tests.support.legacy import make_legacy_data_dir, pem_of
from tests.support.partner import FILE_PATH, PREFIX, Partner
from tests.support.postgres import fresh_database, required_bindir
from tests.support.server import Server

NO_SUCH_FILE = f"{PREFIX}/file/DCM-0001-0000000000000"


def authenticated(server: Server, token: str) -> bool:
    """True when ``server`` accepts ``token`` (then it says the file does not exist)."""
    answer = server.http.request("GET", NO_SUCH_FILE, headers={"Authorization": f"Bearer {token}"})
    if answer.status_code == 401:
        return False
    assert_error(answer, 404, "file_not_found")
    return True


def exercise(server: Server) -> tuple[Partner, list[str]]:
    """A client, a token, an upload and a key rotation; returns the partner and what must
    not appear in clear: its secret and every private key's PEM body."""
    partner = server.new_partner()
    assert partner.upload(samples.jpeg(seed=5), category="LOGO", code=None).status_code == 200
    bodies = [pem_body(server)]
    server.cli("keys", "rotate")
    bodies.append(pem_body(server))
    return partner, [partner.secret_key, *bodies]


def pem_body(server: Server) -> str:
    pem = server.signing_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem.decode().splitlines()[1]  # the first line of base64 of the private key


def test_a_pg_dump_holds_no_partner_secret_and_no_private_key(
    tmp_path: Path, e2e_postgres: str
) -> None:
    url = fresh_database(e2e_postgres, "secrets_at_rest")
    server = Server(data_dir=tmp_path / "data", env={"BERKAS_DATABASE_URL": url})
    server.start()
    try:
        partner, secrets = exercise(server)
    finally:
        server.stop()
    dump = subprocess.run(
        [str(required_bindir() / "pg_dump"), "--dbname", url, "--data-only"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert partner.client_id in dump  # the dump is of the right database
    assert dump.count("sealed:v1:") >= 4  # a client secret, two keys, the link secret
    assert "PRIVATE KEY" not in dump
    for secret in secrets:
        assert secret not in dump


def test_the_sqlite_file_holds_no_partner_secret_and_no_private_key(tmp_path: Path) -> None:
    server = Server(data_dir=tmp_path / "data")
    server.start()
    try:
        _, secrets = exercise(server)
    finally:
        server.stop()
    stored = b"".join(
        path.read_bytes() for path in (tmp_path / "data").glob("berkas.db*") if path.is_file()
    )
    assert b"sealed:v1:" in stored
    assert b"PRIVATE KEY" not in stored
    for secret in secrets:
        assert secret.encode() not in stored


def test_an_older_data_dir_upgrades_without_breaking_tokens_clients_or_links(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    legacy = make_legacy_data_dir(tmp_path / "data", now)
    # A token the old server issued (same code, same key) before the upgrade.
    old_keys = MemoryKeyStore()
    old_keys.add(
        StoredKey(legacy.kid, now, None), pem_of(legacy.signing_key), replace_current=False
    )
    old_clients = MemoryDatabase().clients
    old_clients.add(Client(legacy.client_id, legacy.client_secret, True, now))
    old_token = (
        TokenService(
            KeyRing.open(old_keys, clock=SystemClock(), max_token_lifetime=timedelta(days=1)),
            old_clients,
            SystemClock(),
        )
        .issue(legacy.client_id, "60")
        .token
    )

    server = Server(data_dir=tmp_path / "data")
    # The first start refuses: the old release left a client secret in clear, and berkas
    # seals nothing it finds in clear on its own (a database writer could have put it
    # there). The message names the one command that seals it.
    with pytest.raises(AssertionError, match="run `berkas secrets seal-legacy` once"):
        server.start(attempts=1)
    assert "restart" not in server.output()
    sealed = subprocess.run(
        [sys.executable, "-m", "berkas.cli.main", "secrets", "seal-legacy"],
        env={**os.environ, "BERKAS_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert sealed.stdout.strip() == (
        "sealed 1 client secret key(s) an older release stored in clear"
    )
    assert legacy.client_id in sealed.stderr  # the record of what was sealed, by client
    server.start()
    try:
        assert authenticated(server, old_token)
        # The client signs with the secret it always had.
        partner = Partner(server.http, legacy.client_id, legacy.client_secret)
        uploaded = partner.upload(samples.png(seed=3), category="LOGO", code=None)
        assert uploaded.status_code == 200, uploaded.text
        # Links are still signed with the data dir's link secret.
        link = urlparse(uploaded.json()["link"])
        query = parse_qs(link.query)
        LinkSigner(legacy.link_secret).verify(
            unquote(link.path.removeprefix("/links/")),
            query["expires"][0],
            query["signature"][0],
            int(time.time()),
        )
    finally:
        server.stop()
    data = tmp_path / "data"
    assert not (data / "keys").exists()
    assert not (data / "link-secret").exists()
    stored = b"".join(path.read_bytes() for path in data.glob("berkas.db*"))
    assert legacy.client_secret.encode() not in stored  # sealed, and not left in free pages
    assert legacy.link_secret not in stored

    server.start()  # a second start finds nothing to move and changes nothing
    try:
        assert authenticated(server, old_token)
    finally:
        server.stop()
    # Once only: a second seal-legacy is refused, saying when the first one ran.
    with pytest.raises(AssertionError, match="this is done once only"):
        server.cli("secrets", "seal-legacy")


def test_the_master_key_is_changed_with_rekey(tmp_path: Path) -> None:
    old = base64.b64encode(bytes(range(32))).decode()
    new = base64.b64encode(bytes(range(1, 33))).decode()
    key_file = tmp_path / "master-key"

    def write_keys(*keys: str) -> None:
        key_file.write_text("".join(f"{key}\n" for key in keys))
        key_file.chmod(0o600)

    write_keys(old)
    server = Server(data_dir=tmp_path / "data", env={"BERKAS_MASTER_KEY_FILE": str(key_file)})
    server.start()
    try:
        partner = server.new_partner()
        # A rotated secret: the one it replaced is sealed too, and must survive the rekey
        # (rotated first: a rotation ends the tokens minted before it).
        server.cli("clients", "rotate-secret", partner.client_id, "--grace", "1h")
        token = partner.token  # signed with the replaced secret, within its grace
        # A document stored encrypted: its data key is sealed too (issue 11).
        photo = samples.jpeg(seed=91)
        stored = partner.upload(photo).json()
    finally:
        server.stop()

    # The new key first, the old one still readable; rekey reseals everything.
    write_keys(new, old)
    report = server.cli("secrets", "rekey")
    assert "resealed under master key" in report
    status = json.loads(server.cli("secrets", "status"))
    assert len(status["master_keys"]) == 2
    assert status["sealing_with"] == status["master_keys"][0]
    assert status["sealed"]["document data keys"] == {status["sealing_with"]: 1}
    for kind, counts in status["sealed"].items():
        assert list(counts) == [status["sealing_with"]], kind

    # The old key removed: everything still opens, the replaced client secret included.
    write_keys(new)
    server.start()
    try:
        assert authenticated(server, token)
        assert partner.get_token().status_code == 200  # signed with the replaced secret
        # The document opens with its resealed key, through a fresh link.
        fresh = partner.http.request("GET", f"{FILE_PATH}/{stored['id']}", headers=partner.auth())
        assert httpx.get(fresh.json()["link"], timeout=30).content == photo
    finally:
        server.stop()

    # With only the old key, the node refuses to start, naming the key it lacks, and
    # `secrets status` still says what is sealed with which key.
    write_keys(old)
    with pytest.raises(AssertionError, match="sealed with master key"):
        server.start(attempts=1)
    lacking = json.loads(server.cli("secrets", "status"))
    assert lacking["master_keys"] == [lacking["sealing_with"]]
    assert lacking["sealing_with"] not in lacking["sealed"]["client secret keys"]
    # The same secrets, but the replay answers (the start in between answered one more
    # Request-Id): all under the same key.
    replayed = lacking["sealed"].pop("replay answers")
    assert list(replayed) == list(status["sealed"].pop("replay answers"))
    assert lacking["sealed"] == status["sealed"]
