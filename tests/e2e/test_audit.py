"""The audit trail on a real server, embedded and PostgreSQL + Ceph RGW (issue 11): a
scripted sequence of actions leaves exactly its events, in order, with who did them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import samples
from tests.support.partner import FILE_PATH, Partner
from tests.support.server import Server

UA = {"User-Agent": "audit-test/1"}


def _events(partner: Partner, file_id: str) -> httpx.Response:
    path = f"{FILE_PATH}/{file_id}/events"
    return partner.http.request("GET", path, headers=partner.auth())


def test_a_scripted_sequence_leaves_exactly_its_events(server: Server, partner: Partner) -> None:
    answer = partner.upload(samples.jpeg(seed=91)).json()
    file_id = answer["id"]
    described = partner.http.request(
        "GET", f"{FILE_PATH}/{file_id}", headers={**partner.auth(), **UA}
    )
    assert httpx.get(answer["link"], headers=UA, timeout=30).status_code == 200
    tampered = answer["link"].replace("signature=", "signature=A")[: len(answer["link"])]
    assert httpx.get(tampered, headers=UA, timeout=30).status_code == 403
    revoke = f"{FILE_PATH}/{file_id}/links/revoke"
    assert partner.http.request("POST", revoke, headers=partner.auth()).status_code == 200
    assert httpx.get(described.json()["link"], timeout=30).status_code == 403
    deleted = partner.http.request("DELETE", f"{FILE_PATH}/{file_id}", headers=partner.auth())
    assert deleted.status_code == 204

    trail = _events(partner, file_id)

    assert trail.status_code == 200, trail.text
    events = trail.json()["events"]
    assert [(e["kind"], e["detail"]) for e in events] == [
        ("uploaded", None),
        ("described", described.json()["link_expires_at"]),
        ("link_opened", None),
        # The tampered link is refused before its row is read: no event (design 6.3).
        ("links_revoked", None),
        ("link_refused", "link_revoked"),
        ("deleted", "partner"),
    ]
    assert [e["user_agent"] for e in events][1:3] == ["audit-test/1"] * 2
    # Every event names its caller, the upload's included.
    assert {e["ip"] for e in events} == {"127.0.0.1"}
    assert all(e["user_agent"] and e["request_id"] for e in events)
    assert trail.json()["id"] == file_id
    # Nobody else reads it, before or after the delete.
    stranger = server.new_partner()
    assert _events(stranger, file_id).status_code == 404
    assert _events(partner, "DCM-0001-1000000000000").status_code == 404


def test_the_client_address_is_read_through_a_trusted_proxy(tmp_path: Path) -> None:
    proxied = Server(data_dir=tmp_path / "data", env={"BERKAS_TRUSTED_PROXIES": "127.0.0.0/8"})
    proxied.start()
    try:
        partner = proxied.new_partner()
        answer = partner.upload(samples.jpeg(seed=92)).json()
        spoofed = {"X-Forwarded-For": "192.0.2.1, 198.51.100.7"}
        assert httpx.get(answer["link"], headers=spoofed, timeout=30).status_code == 200

        events = _events(partner, answer["id"]).json()["events"]

        # The rightmost address that is not a trusted proxy: what the proxy itself saw.
        assert (events[-1]["kind"], events[-1]["ip"]) == ("link_opened", "198.51.100.7")
    finally:
        proxied.stop()


def _export(server: Server, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.cli("audit", "export", *args).splitlines()]


def test_the_operator_exports_the_trail_as_json_lines(server: Server) -> None:
    mine, theirs = server.new_partner(), server.new_partner()
    started = datetime.now(UTC) - timedelta(seconds=1)
    first = mine.upload(samples.jpeg(seed=92)).json()
    other = theirs.upload(samples.jpeg(seed=93)).json()
    assert httpx.get(first["link"], headers=UA, timeout=30).status_code == 200
    deleted = mine.http.request("DELETE", f"{FILE_PATH}/{first['id']}", headers=mine.auth())
    assert deleted.status_code == 204

    exported = _export(server, "--client", mine.client_id)
    everyone = _export(server, "--since", started.isoformat())

    assert [(e["file_id"], e["kind"]) for e in exported] == [
        (first["id"], "uploaded"),
        (first["id"], "link_opened"),
        (first["id"], "deleted"),
    ]
    assert {e["client_id"] for e in exported} == {mine.client_id}
    assert exported[1]["user_agent"] == "audit-test/1"
    assert exported[1]["ip"] == "127.0.0.1"
    assert exported[2]["detail"] == "partner"
    ids = [e["id"] for e in everyone]
    assert ids == sorted(ids)
    assert {(e["file_id"], e["kind"]) for e in everyone} >= {
        (first["id"], "uploaded"),
        (other["id"], "uploaded"),
    }
    assert all(str(e["at"]) >= started.strftime("%Y-%m-%dT%H:%M:%S") for e in everyone)
    # A span back from now and a future date; a date that is none is refused by name.
    assert len(_export(server, "--since", "1h", "--client", mine.client_id)) == 3
    assert _export(server, "--since", "2999-01-01") == []
    with pytest.raises(AssertionError, match="--since"):
        server.cli("audit", "export", "--since", "last tuesday")
