"""What a leaked database or backup must not give away, and what a writer to the database
without the master key must not achieve, on a real server (embedded, and PostgreSQL +
Ceph RGW): a planted clear signing key or partner secret is refused at use and at start,
a dump holds no working token, a deleted document's key is in no file of the data dir,
a rekey leaves nothing the retired master key opens, a rotation or a disable ends the
tokens minted before it, and a file given to another partner or a revocation undone is
not served. Error bodies name no key, key id or path."""

from __future__ import annotations

import base64
import binascii
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from berkas.adapters.keys import thumbprint
from berkas.adapters.sealing import MasterKey, sealed_kid
from tests.support import backstage, samples
from tests.support.errors import assert_error
from tests.support.legacy import pem_of
from tests.support.partner import FILE_PATH, PREFIX, Partner, until_token_refused
from tests.support.postgres import required_bindir
from tests.support.server import Server

MASTER = bytes(range(40, 72))
NEWER = bytes(range(80, 112))
NO_SUCH_FILE = f"{PREFIX}/file/DCM-0001-0000000000000"
_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]) -> Iterator[Server]:
    """A server whose master key the test knows (and can rotate)."""
    root = tmp_path_factory.mktemp("leak")
    server = Server(data_dir=root / "data", env={**backend_env, "BERKAS_MASTER_KEY": _b64(MASTER)})
    server.start()
    yield server
    server.stop()


def _accepted(server: Server, token: str) -> bool:
    answer = server.http.request("GET", NO_SUCH_FILE, headers={"Authorization": f"Bearer {token}"})
    if answer.status_code == 401:
        return False
    assert_error(answer, 404, "file_not_found")
    return True


def _restart_refused(server: Server, *expected: str) -> str:
    server.stop()
    with pytest.raises(AssertionError, match="exited early") as refused:
        server.start(attempts=1)
    output = str(refused.value)
    for text in expected:
        assert text in output, output
    # The refusal never suggests the restart that would have sealed the planted value.
    assert "restart" not in output.lower().split("exited early", 1)[1]
    return output


def _forged_token(key: rsa.RSAPrivateKey, kid: str, client_id: str) -> str:
    now = int(time.time())
    claims = {
        "sub": "payload",
        "iat": now,
        "exp": now + 600,
        "user": {"businessServiceClientId": client_id},
        "jti": f"0.{uuid.uuid4().hex}",
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def test_a_clear_signing_key_planted_in_the_database_is_refused_at_use_and_at_start(
    node: Server,
) -> None:
    partner = node.new_partner()
    planted = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = thumbprint(planted.public_key())
    now = datetime.now(UTC)
    # A retired key in clear: before, the next start sealed it and the ring trusted it.
    backstage.execute(
        node,
        "INSERT INTO signing_keys (kid, created_at, retired_at, is_current, private_key) "
        "VALUES (:kid, :created, :retired, NULL, :pem)",
        kid=kid,
        created=now - timedelta(minutes=5),
        retired=now - timedelta(minutes=1),
        pem=pem_of(planted).decode(),
    )
    try:
        forged = _forged_token(planted, kid, partner.client_id)
        assert not _accepted(node, forged)
        output = _restart_refused(node, f"signing_keys.private_key of '{kid}' is stored in clear")
        assert "written into the database without the master key" in output
    finally:
        backstage.execute(node, "DELETE FROM signing_keys WHERE kid = :kid", kid=kid)
        node.start()
    assert not _accepted(node, forged)
    assert _accepted(node, partner.token)


def test_a_clear_partner_secret_planted_in_the_database_is_refused_at_use_and_at_start(
    node: Server,
) -> None:
    victim = node.new_partner()
    ((sealed,),) = backstage.query(
        node, "SELECT secret_key FROM clients WHERE client_id = :id", id=victim.client_id
    )
    chosen = "SK-chosen-by-whoever-wrote-the-row"
    backstage.execute(
        node,
        "UPDATE clients SET secret_key = :s WHERE client_id = :id",
        s=chosen,
        id=victim.client_id,
    )
    try:
        attacker = Partner(node.http, victim.client_id, chosen)
        answer = attacker.get_token()
        assert answer.status_code == 500, answer.text  # refused: the row is not trusted
        assert "token" not in answer.json()
        assert chosen not in answer.text
        _restart_refused(node, f"clients.secret_key of '{victim.client_id}' is stored in clear")
    finally:
        backstage.execute(
            node,
            "UPDATE clients SET secret_key = :s WHERE client_id = :id",
            s=sealed,
            id=victim.client_id,
        )
        node.start()
    # Nothing sealed it meanwhile: the row is as it was, and the partner's own secret works.
    assert backstage.query(
        node, "SELECT secret_key FROM clients WHERE client_id = :id", id=victim.client_id
    ) == [(sealed,)]
    assert _accepted(node, victim.token)


def _dump(server: Server) -> bytes:
    url = server.env.get("BERKAS_DATABASE_URL")
    if url is None:
        return b"".join(p.read_bytes() for p in server.data_dir.glob("berkas.db*"))
    dump = subprocess.run(
        [str(required_bindir() / "pg_dump"), "--dbname", url, "--data-only"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    # bytea columns (the replay answers) are dumped as hex: read them as their bytes too.
    decoded = [binascii.unhexlify(raw) for raw in re.findall(rb"\\\\x((?:[0-9a-f]{2})+)", dump)]
    return b"\n".join([dump, *decoded])


def test_a_database_dump_taken_after_a_token_was_issued_holds_no_working_token(
    node: Server,
) -> None:
    partner = node.new_partner()
    issued = partner.signed(
        "POST",
        f"{PREFIX}/token",
        b'{"grant_type":"client_credentials","valid_time":"60"}',
        request_id="dump-1",
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["token"]
    assert _accepted(node, token)
    # The answer is kept for DOKU's replay rule, sealed to this client and Request-Id.
    rows = backstage.query(
        node,
        "SELECT body FROM replays WHERE client_id = :c AND request_id = 'dump-1'",
        c=partner.client_id,
    )
    assert len(rows) == 1
    assert bytes(rows[0][0]).startswith(b"sealed:v1:")

    dump = _dump(node)

    assert partner.client_id.encode() in dump  # the dump is of the right database
    assert token.encode() not in dump
    assert token.split(".")[2].encode() not in dump  # not even its signature
    for found in _JWT.findall(dump):
        assert not _accepted(node, found.decode())
    # The replay still answers the first token again (409, DOKU's rule).
    again = partner.signed(
        "POST",
        f"{PREFIX}/token",
        b'{"grant_type":"client_credentials","valid_time":"60"}',
        request_id="dump-1",
    )
    assert again.status_code == 409
    assert again.json()["token"] == token


def test_tokens_minted_before_a_rotation_or_a_disable_stop_working(node: Server) -> None:
    partner = node.new_partner()
    before_rotation = partner.token

    node.cli("clients", "rotate-secret", partner.client_id, "--grace", "1h")
    until_token_refused(node.http, before_rotation)  # docs/design.md 2.1: the cache bound

    answer = node.http.request(
        "GET", NO_SUCH_FILE, headers={"Authorization": f"Bearer {before_rotation}"}
    )
    assert_error(answer, 401, "token_revoked")
    fresh = partner.get_token()  # the replaced secret still signs within its grace
    assert fresh.status_code == 200, fresh.text
    before_disable = fresh.json()["token"]
    assert _accepted(node, before_disable)

    node.cli("clients", "disable", partner.client_id)
    node.cli("clients", "enable", partner.client_id)
    until_token_refused(node.http, before_disable)

    answer = node.http.request(
        "GET", NO_SUCH_FILE, headers={"Authorization": f"Bearer {before_disable}"}
    )
    assert_error(answer, 401, "token_revoked")
    after = partner.get_token()
    assert after.status_code == 200, after.text
    assert _accepted(node, after.json()["token"])


def _secrets_in_bodies(node: Server, answer: httpx.Response) -> None:
    """An error body names no master key id, key file or path of the node."""
    body = answer.text
    for kid in (MasterKey(MASTER).kid, MasterKey(NEWER).kid):
        assert kid not in body
    assert "master" not in body.lower()
    assert str(node.data_dir) not in body
    assert "/" not in answer.json()["error"]["message"]


def test_a_file_given_to_another_partner_or_a_revocation_undone_is_not_served(
    node: Server,
) -> None:
    owner, other = node.new_partner(), node.new_partner()
    photo = samples.jpeg(seed=191)
    stored = owner.upload(photo).json()
    first_link = stored["link"]
    assert httpx.get(first_link, timeout=30).content == photo

    revoked = owner.http.request(
        "POST", f"{FILE_PATH}/{stored['id']}/links/revoke", headers=owner.auth()
    )
    assert revoked.status_code == 200, revoked.text
    assert httpx.get(first_link, timeout=30).status_code == 403
    assert httpx.get(revoked.json()["link"], timeout=30).content == photo

    # A database writer sets the generation back to revive the revoked link: the link's
    # MAC verifies again, but the data key is bound to the generation and opens nothing.
    backstage.execute(
        node,
        "UPDATE files SET link_generation = link_generation - 1 WHERE id = :id",
        id=stored["id"],
    )
    undone = httpx.get(first_link, timeout=30)
    assert_error(undone, 500, "file_unreadable")
    assert photo[:64] not in undone.content
    _secrets_in_bodies(node, undone)
    backstage.execute(
        node,
        "UPDATE files SET link_generation = link_generation + 1 WHERE id = :id",
        id=stored["id"],
    )

    # ... or gives the file to another partner: that partner's link opens nothing either.
    backstage.execute(
        node, "UPDATE files SET client_id = :c WHERE id = :id", c=other.client_id, id=stored["id"]
    )
    described = other.http.request("GET", f"{FILE_PATH}/{stored['id']}", headers=other.auth())
    assert described.status_code == 200, described.text
    taken = httpx.get(described.json()["link"], timeout=30)
    assert_error(taken, 500, "file_unreadable")
    _secrets_in_bodies(node, taken)
    backstage.execute(
        node, "UPDATE files SET client_id = :c WHERE id = :id", c=owner.client_id, id=stored["id"]
    )
    fresh = owner.http.request("GET", f"{FILE_PATH}/{stored['id']}", headers=owner.auth())
    assert httpx.get(fresh.json()["link"], timeout=30).content == photo


def test_after_a_master_key_rotation_and_rekey_nothing_opens_with_the_retired_key(
    node: Server,
) -> None:
    partner = node.new_partner()
    photo = samples.jpeg(seed=192)
    stored = partner.upload(photo).json()
    node.stop()
    node.env.update(BERKAS_MASTER_KEY=_b64(NEWER), BERKAS_MASTER_KEY_PREVIOUS=_b64(MASTER))
    assert "resealed under master key" in node.cli("secrets", "rekey")

    retired, current = MasterKey(MASTER).kid, MasterKey(NEWER).kid
    dump = _dump(node)
    kids = {
        sealed_kid(value.decode())
        for value in re.findall(rb"sealed:v1:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+", dump)
    }
    # Each sealed value names the one key whose AES-GCM opens it: all are the new key's.
    assert kids == {current}, kids
    assert retired != current

    # The retired key destroyed: the node serves everything with the new key alone.
    del node.env["BERKAS_MASTER_KEY_PREVIOUS"]
    node.start()
    fresh = partner.http.request("GET", f"{FILE_PATH}/{stored['id']}", headers=partner.auth())
    assert httpx.get(fresh.json()["link"], timeout=30).content == photo


def test_after_a_delete_no_file_of_the_data_dir_holds_the_sealed_data_key(
    tmp_path: Path,
) -> None:
    # SQLite (the embedded default) only: PostgreSQL keeps a deleted row in its WAL, its
    # archives and its backups, which berkas does not control (README, "Secrets at rest").
    server = Server(data_dir=tmp_path / "data")
    server.start()
    try:
        partner = server.new_partner()
        stored = partner.upload(samples.jpeg(seed=193)).json()
        ((data_key,),) = backstage.query(
            server, "SELECT data_key FROM files WHERE id = :id", id=stored["id"]
        )
        wrapped = str(data_key).encode()
        found = [
            p for p in (tmp_path / "data").rglob("*") if p.is_file() and wrapped in p.read_bytes()
        ]
        assert found, "the sealed data key should be on disk before the delete"

        deleted = partner.http.request(
            "DELETE", f"{FILE_PATH}/{stored['id']}", headers=partner.auth()
        )
        assert deleted.status_code == 204, deleted.text

        # No further write: the answer itself came after the key was gone from every file.
        for path in (tmp_path / "data").rglob("*"):
            if path.is_file():
                content = path.read_bytes()
                assert wrapped not in content, path
                assert wrapped[-32:] not in content, path
    finally:
        server.stop()
