"""DELETE /file/{id} on a real server, embedded and PostgreSQL + Ceph RGW (issue 11):
deleted means gone from the store and the database, its links dead at once, a repeat
answered the same, and another partner's id not found."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.support import backstage, samples
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server


def _delete(partner: Partner, file_id: str) -> httpx.Response:
    return partner.http.request("DELETE", f"{FILE_PATH}/{file_id}", headers=partner.auth())


def _stored_names(server: Server, request: pytest.FixtureRequest) -> list[str]:
    return backstage.stored_names(server, request)


def _rows(server: Server, file_id: str) -> int:
    """How many rows of the files table carry ``file_id``, asked of the database itself."""
    rows = backstage.query(server, "SELECT count(*) FROM files WHERE id = :id", id=file_id)
    return int(rows[0][0])


def _key(answer: dict[str, Any]) -> str:
    return unquote(urlsplit(answer["link"]).path.removeprefix("/links/"))


def test_deleted_is_gone_from_store_and_database_and_its_links_die(
    server: Server, partner: Partner, request: pytest.FixtureRequest
) -> None:
    content = samples.jpeg(seed=71)
    answer = partner.upload(content).json()
    kept = partner.upload(samples.jpeg(seed=72)).json()
    key = _key(answer)
    assert any(name.endswith(key.rsplit("/", 1)[-1]) for name in _stored_names(server, request))
    assert _rows(server, answer["id"]) == 1
    again = partner.http.request("GET", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())
    links = [answer["link"], again.json()["link"]]
    assert httpx.get(links[0], timeout=30).content == content

    deleted = _delete(partner, answer["id"])

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert _rows(server, answer["id"]) == 0
    names = _stored_names(server, request)
    assert not any(name.endswith(key.rsplit("/", 1)[-1]) for name in names), names
    for link in links:  # every link issued so far, dead at once
        dead = httpx.get(link, timeout=30)
        assert dead.status_code == 404, dead.text
        assert dead.json()["error"]["code"] == "file_not_found"
    described = partner.http.request("GET", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())
    assert described.status_code == 404
    # Idempotent: the owner deleting again hears the same answer.
    assert _delete(partner, answer["id"]).status_code == 204
    # The other file is untouched, bytes and all.
    other = partner.http.request("GET", f"{FILE_PATH}/{kept['id']}", headers=partner.auth())
    data = httpx.get(other.json()["link"], timeout=30).content
    assert hashlib.sha256(data).hexdigest() == kept["sha256"]
    assert "Traceback" not in server.output()


def test_another_partners_id_is_not_found_and_not_deleted(server: Server, partner: Partner) -> None:
    answer = partner.upload(samples.jpeg(seed=73)).json()
    stranger = server.new_partner()

    refused = _delete(stranger, answer["id"])
    missing = _delete(stranger, "DCM-0001-1000000000000")

    assert (refused.status_code, missing.status_code) == (404, 404)
    assert refused.json()["error"]["code"] == missing.json()["error"]["code"] == "file_not_found"
    assert httpx.get(answer["link"], timeout=30).status_code == 200
    # A repeat by the stranger after the owner deleted it is still not found: the
    # tombstone answers only its owner.
    assert _delete(partner, answer["id"]).status_code == 204
    assert _delete(stranger, answer["id"]).status_code == 404


def test_a_delete_without_a_token_is_refused(server: Server, partner: Partner) -> None:
    answer = partner.upload(samples.jpeg(seed=74)).json()

    refused = partner.http.request("DELETE", f"{FILE_PATH}/{answer['id']}")

    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_missing"
    assert httpx.get(answer["link"], timeout=30).status_code == 200


def test_the_operator_deletes_any_partners_file_from_the_cli(
    server: Server, partner: Partner
) -> None:
    answer = partner.upload(samples.jpeg(seed=75)).json()

    said = server.cli("files", "delete", answer["id"])

    assert f"{answer['id']} deleted (client {partner.client_id}" in said
    assert httpx.get(answer["link"], timeout=30).status_code == 404
    described = partner.http.request("GET", f"{FILE_PATH}/{answer['id']}", headers=partner.auth())
    assert described.status_code == 404
    # The owner's own DELETE afterwards: gone already, so the same 204.
    assert _delete(partner, answer["id"]).status_code == 204
