"""Rotating a partner's secret while serving (berkas clients rotate-secret): the old and
the new secret both sign requests until the grace ends, then only the new one does; on
every node at once (the secrets are in the database), and never stored in clear."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.support.errors import assert_error
from tests.support.partner import PREFIX, Partner
from tests.support.postgres import fresh_database, required_bindir
from tests.support.server import Server

# Short enough to wait out, long enough for the checks inside it on a busy machine.
GRACE = "3s"
REQUIREMENTS = (
    f"{PREFIX}/file?businessType=PERSONAL&businessLegalEntity=PERSEORANGAN"
    "&brandBusinessLine=RETAIL&businessContactNationality=ID"
)
MASTER_KEY = base64.b64encode(bytes(range(7, 39))).decode()


def signs(partner: Partner) -> bool:
    """True when the server takes ``partner``'s signature, on a token and a GET."""
    token = partner.get_token()
    lookup = partner.signed("GET", REQUIREMENTS)
    if token.status_code == 401:
        assert_error(token, 401, "signature_invalid")
        assert_error(lookup, 401, "signature_invalid")
        return False
    assert token.status_code == 200, token.text
    assert lookup.status_code == 200, lookup.text
    return True


def rotate(server: Server, partner: Partner, grace: str) -> tuple[Partner, datetime]:
    """Rotate through the CLI (another process); the partner with the new secret, and
    until when the old one still works."""
    answer = json.loads(
        server.cli("clients", "rotate-secret", partner.client_id, "--grace", grace, "--json")
    )
    assert answer["secret_key"] != partner.secret_key
    until = datetime.fromisoformat(answer["previous_secret_valid_until"])
    return Partner(partner.http, partner.client_id, answer["secret_key"]), until


def wait_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()) + 0.2)


def test_both_secrets_work_during_the_grace_then_only_the_new_one(tmp_path: Path) -> None:
    server = Server(data_dir=tmp_path / "data", env={"BERKAS_DEMO_CLIENT": "false"})
    server.start()
    try:
        old = server.new_partner()
        assert signs(old)

        new, until = rotate(server, old, GRACE)

        assert datetime.now(UTC) < until, "the grace ended before the first check"
        assert signs(new)
        assert signs(old)  # the partner has not switched yet: nothing fails
        status = json.loads(server.cli("secrets", "status"))["sealed"]
        assert sum(status["previous client secret keys"].values()) == 1

        wait_until(until)
        assert not signs(old)
        assert signs(new)
        (listed,) = json.loads(server.cli("clients", "list", "--json"))
        assert listed["previous_secret_valid_until"] is None  # nothing left to switch from
    finally:
        server.stop()
    stored = b"".join(
        path.read_bytes() for path in (tmp_path / "data").glob("berkas.db*") if path.is_file()
    )
    assert stored.count(b"sealed:v1:") >= 2
    assert old.secret_key.encode() not in stored
    assert new.secret_key.encode() not in stored


def test_a_rotation_reaches_every_node_at_once_and_no_secret_is_in_a_pg_dump(
    tmp_path: Path, e2e_postgres: str
) -> None:
    url = fresh_database(e2e_postgres, "secret_rotation")
    env = {"BERKAS_DATABASE_URL": url, "BERKAS_MASTER_KEY": MASTER_KEY}
    one = Server(data_dir=tmp_path / "one", env={**env, "BERKAS_NODE_ID": "1"})
    two = Server(data_dir=tmp_path / "two", env={**env, "BERKAS_NODE_ID": "2"})
    one.start()
    two.start()
    try:
        old_on_one = one.new_partner()
        old_on_two = Partner(two.http, old_on_one.client_id, old_on_one.secret_key)

        new_on_one, until = rotate(one, old_on_one, GRACE)
        new_on_two = Partner(two.http, new_on_one.client_id, new_on_one.secret_key)

        assert datetime.now(UTC) < until, "the grace ended before the first check"
        assert all(map(signs, (new_on_two, old_on_two, new_on_one, old_on_one)))
        dump = subprocess.run(
            [str(required_bindir() / "pg_dump"), "--dbname", url, "--data-only"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

        wait_until(until)
        assert not signs(old_on_two)
        assert not signs(old_on_one)
        assert signs(new_on_two)
    finally:
        two.stop()
        one.stop()
    assert old_on_one.client_id in dump  # the dump is of the right database
    # The two client secrets, the signing key and the link secret, all sealed.
    assert dump.count("sealed:v1:") >= 4
    assert old_on_one.secret_key not in dump
    assert new_on_one.secret_key not in dump
