"""Legal hold on a real server (embedded, and PostgreSQL + Ceph RGW): a held document
survives its partner's DELETE, the operator's delete and its retention, each refusal the
documented one, and is deleted by each of them once released."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support import backstage, samples
from tests.support.errors import assert_error
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server

# About 3 s of retention (LOGO: kept until deleted), a housekeeping round every second.
RETENTION = {
    "BERKAS_RETENTION_DAYS": "0.00004",
    "BERKAS_RETENTION_DAYS_BY_CATEGORY": "LOGO=0",
    "BERKAS_HOUSEKEEPING_INTERVAL_SECONDS": "1",
}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]) -> Iterator[Server]:
    server = Server(
        data_dir=tmp_path_factory.mktemp("hold") / "data", env={**backend_env, **RETENTION}
    )
    server.start()
    yield server
    server.stop()


def _exists(node: Server, file_id: str) -> bool:
    return bool(backstage.query(node, "SELECT id FROM files WHERE id = :id", id=file_id))


def _wait_until_gone(node: Server, file_id: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _exists(node, file_id):
            return True
        time.sleep(0.2)
    return False


def test_a_held_document_survives_every_deletion_until_released(node: Server) -> None:
    partner = node.new_partner()
    photo = samples.jpeg(seed=301)
    held = partner.upload(photo).json()["id"]
    released_later = partner.upload(samples.jpeg(seed=302)).json()["id"]
    for file_id in (held, released_later):
        node.cli("files", "hold", file_id, "--actor", "legal")

    refused = partner.http.request("DELETE", f"{FILE_PATH}/{held}", headers=partner.auth())
    assert_error(refused, 409, "file_on_hold")
    assert "legal hold" in refused.json()["error"]["message"]
    with pytest.raises(AssertionError, match=r"on legal hold .*\(file_on_hold\)"):
        node.cli("files", "delete", held)
    time.sleep(6)  # two retention spans, several housekeeping rounds
    assert _exists(node, held)
    assert _exists(node, released_later)
    described = partner.http.request("GET", f"{FILE_PATH}/{held}", headers=partner.auth())
    assert described.json()["legal_hold"] is True

    # Released: the partner's DELETE goes through; retention takes the other one.
    node.cli("files", "release", held, "--actor", "legal")
    node.cli("files", "release", released_later, "--actor", "legal")
    gone = partner.http.request("DELETE", f"{FILE_PATH}/{held}", headers=partner.auth())
    assert gone.status_code == 204, gone.text
    assert not _exists(node, held)
    assert _wait_until_gone(node, released_later)
    events = partner.http.request(
        "GET", f"{FILE_PATH}/{released_later}/events", headers=partner.auth()
    ).json()["events"]
    assert [e["kind"] for e in events][-3:] == ["hold_set", "hold_released", "retention_expired"]


def test_the_operator_deletes_a_released_document(node: Server) -> None:
    partner: Partner = node.new_partner()
    # A LOGO: retention never takes it, so only the operator's delete can.
    file_id = partner.upload(samples.jpeg(seed=303), category="LOGO", code=None).json()["id"]
    node.cli("files", "hold", file_id)
    node.cli("files", "release", file_id)
    assert "deleted" in node.cli("files", "delete", file_id, "--actor", "ticket-881")
    assert not _exists(node, file_id)
    ((actor,),) = backstage.query(
        node, "SELECT actor FROM file_events WHERE file_id = :id AND kind = 'deleted'", id=file_id
    )
    assert actor == "ticket-881"
