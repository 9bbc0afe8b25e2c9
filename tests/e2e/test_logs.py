"""What a real ``berkas serve`` writes to its log: one access line per request with the
route template, status, duration, error code, client and request id; never a link's
signature, a token or a secret (issue 10)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import samples
from tests.support.partner import PREFIX, Partner
from tests.support.server import Server
from tests.support.tokens import b64url, claims, segment


@pytest.fixture(scope="module")
def json_server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[Server]:
    # On both backends: the audit trail's request ids are checked against this log.
    server = Server(
        data_dir=tmp_path_factory.mktemp("logs") / "data",
        env={"BERKAS_LOG_LEVEL": "debug", "BERKAS_LOG_FORMAT": "json", **backend_env},
    )
    server.start()
    yield server
    server.stop()


def records(server: Server) -> list[dict[str, Any]]:
    """The JSON log lines so far (the start-up banner is plain text on stdout)."""
    lines = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def access_line(server: Server, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        found = [
            r
            for r in records(server)
            if r["logger"] == "berkas.access" and r.get("request_id") == request_id
        ]
        if found or time.monotonic() > deadline:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.05)


def test_every_request_gets_one_access_line_naming_its_route_client_and_id(
    json_server: Server,
) -> None:
    partner = json_server.new_partner()
    uploaded = partner.upload(samples.jpeg(seed=11), category="LOGO", code=None)
    assert uploaded.status_code == 200, uploaded.text
    line = access_line(json_server, uploaded.headers["request-id"])
    assert line["method"] == "POST"
    assert line["route"] == f"{PREFIX}/file"
    assert line["status"] == 200
    assert line["client_id"] == partner.client_id
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    assert line["time"].endswith("Z")

    missing = partner.http.request(
        "GET", f"{PREFIX}/file/DCM-0001-0000000000000", headers=partner.auth()
    )
    line = access_line(json_server, missing.headers["request-id"])
    assert (line["route"], line["status"], line["error_code"]) == (
        f"{PREFIX}/file/{{file_id}}",
        404,
        "file_not_found",
    )


def test_a_signed_requests_id_is_the_callers_request_id(json_server: Server) -> None:
    partner = json_server.new_partner()
    answered = partner.token_request(
        {"grant_type": "client_credentials"}, request_id="support-ticket-4711"
    )
    assert answered.status_code == 200, answered.text
    assert answered.headers["request-id"] == "support-ticket-4711"
    line = access_line(json_server, "support-ticket-4711")
    assert (line["route"], line["client_id"]) == (f"{PREFIX}/token", partner.client_id)


def test_links_tokens_and_secrets_never_reach_the_log(json_server: Server) -> None:
    partner = json_server.new_partner()
    stored = partner.upload(samples.jpeg(seed=12), category="LOGO", code=None).json()
    link = stored["link"]
    assert "signature=" in link
    downloaded = httpx.get(link, timeout=30)
    assert downloaded.status_code == 200
    tampered = httpx.get(link[:-2] + "xx", timeout=30)
    assert tampered.status_code == 403
    refused = partner.upload(samples.jpeg(seed=13), token=partner.token[:-4] + "AAAA")
    assert refused.status_code == 401

    line = access_line(json_server, downloaded.headers["request-id"])
    assert (line["route"], line["status"]) == ("/links/{key:path}", 200)
    log = json_server.output()
    query = link.partition("?")[2]
    assert query
    assert query not in log  # neither the signature nor the expiry of any link
    assert "signature" not in json.dumps(line)
    assert partner.token not in log
    assert partner.secret_key not in log
    # The cause of the 401 is there at debug level, for the operator.
    causes = [r for r in records(json_server) if r["message"].startswith("answered 401")]
    assert any(r["request_id"] == refused.headers["request-id"] for r in causes), causes


def test_a_refused_caller_is_named_as_claimed_and_unverified(json_server: Server) -> None:
    partner = json_server.new_partner()
    # A token whose signature fails: the client it claims is on the line, marked so.
    forged = partner.upload(samples.jpeg(seed=14), token=partner.token[:-4] + "AAAA")
    assert forged.status_code == 401
    line = access_line(json_server, forged.headers["request-id"])
    assert line["claimed_client_id"] == partner.client_id
    assert "client_id" not in line  # nobody was authenticated
    # A signed request with the wrong secret: its Client-Id, claimed.
    wrong = Partner(json_server.http, partner.client_id, "SK-not-the-secret")
    refused = wrong.token_request({"grant_type": "client_credentials"})
    assert refused.status_code == 401
    line = access_line(json_server, refused.headers["request-id"])
    assert (line["claimed_client_id"], line["error_code"]) == (
        partner.client_id,
        "signature_invalid",
    )
    # A claim that is no Client-Id (a forged log field) is left out.
    odd = Partner(json_server.http, "BRN-1 client_id=admin", partner.secret_key)
    refused = odd.token_request({"grant_type": "client_credentials"})
    assert refused.status_code == 401
    assert "claimed_client_id" not in access_line(json_server, refused.headers["request-id"])


def test_the_openapi_document_is_logged_under_its_route(json_server: Server) -> None:
    answered = httpx.get(f"{json_server.url}/openapi.json", timeout=10)
    assert answered.status_code == 200
    line = access_line(json_server, answered.headers["request-id"])
    assert (line["route"], line["status"]) == ("/openapi.json", 200)


def unsigned_token(client_id: str) -> str:
    """A token shaped as POST /token's, claiming ``client_id``, signed by nobody."""
    return ".".join(
        (segment({"alg": "RS256", "typ": "JWT"}), segment(claims(client_id)), b64url(b"x" * 256))
    )


def test_text_lines_are_one_human_line_per_request(tmp_path: Path) -> None:
    server = Server(data_dir=tmp_path / "data", env={"BERKAS_LOG_LEVEL": "info"})
    server.start()
    try:
        answered = httpx.get(f"{server.url}/healthz", timeout=10)
        request_id = answered.headers["request-id"]
        deadline = time.monotonic() + 10
        while request_id not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        (line,) = [text for text in server.output().splitlines() if request_id in text]
        assert " INFO berkas.access GET /healthz 200 " in line
        assert line.endswith(f"request_id={request_id}")
        refused = httpx.get(
            f"{server.url}{PREFIX}/file/DCM-0001-0000000000000",
            headers={"Authorization": "Bearer " + unsigned_token("BRN-0001-10791114622547")},
            timeout=10,
        )
        assert refused.status_code == 401
        request_id = refused.headers["request-id"]
        deadline = time.monotonic() + 10
        while request_id not in server.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        (line,) = [text for text in server.output().splitlines() if request_id in text]
        assert " claimed_client=BRN-0001-10791114622547 (unverified) " in line
    finally:
        server.stop()


def test_a_photos_metadata_never_reaches_the_log_at_debug(json_server: Server) -> None:
    # Pillow's EXIF/TIFF readers log every tag at DEBUG; berkas strips this metadata before
    # storing, and must not write it to the log instead. Orientation 6 makes berkas read the
    # EXIF to turn the photo upright, the path where the tags are parsed.
    partner = json_server.new_partner()
    photo = samples.gps_jpeg(seed=14, orientation=6)
    answer = partner.upload(photo, category="LOGO", code=None)
    assert answer.status_code == 200, answer.text
    assert "GPS" in answer.json()["metadata_removed"]
    access_line(json_server, answer.headers["request-id"])

    log = json_server.output()
    assert samples.CAMERA not in log
    assert "GPSLatitude" not in log
    assert "shot at home" not in log
    assert not [r for r in records(json_server) if r["logger"].startswith("PIL")]


def test_every_audit_event_names_its_caller_and_the_request_of_its_access_line(
    json_server: Server,
) -> None:
    partner = json_server.new_partner()
    agent = {"User-Agent": "kyc-portal/2.1"}
    uploaded = partner.upload(samples.jpeg(seed=15), category="LOGO", code=None, headers=agent)
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    path = f"{PREFIX}/file/{file_id}"
    described = partner.http.request("GET", path, headers={**partner.auth(), **agent})
    opened = httpx.get(described.json()["link"], headers=agent, timeout=30)
    revoked = partner.http.request(
        "POST", f"{path}/links/revoke", headers={**partner.auth(), **agent}
    )
    refused = httpx.get(described.json()["link"], headers=agent, timeout=30)
    assert refused.status_code == 403
    json_server.cli("files", "hold", file_id, "--actor", "compliance-team")
    json_server.cli("files", "release", file_id)  # the OS user by default
    deleted = partner.http.request("DELETE", path, headers={**partner.auth(), **agent})
    assert deleted.status_code == 204, deleted.text

    trail = partner.http.request("GET", f"{path}/events", headers=partner.auth()).json()["events"]
    requests = [uploaded, described, opened, revoked, refused]
    partner_events = [e for e in trail if e["kind"] not in ("hold_set", "hold_released")]
    assert [e["kind"] for e in partner_events] == [
        "uploaded",
        "described",
        "link_opened",
        "links_revoked",
        "link_refused",
        "deleted",
    ]
    for event, answer in zip(partner_events, [*requests, deleted], strict=True):
        request_id = answer.headers["request-id"]
        assert event["request_id"] == request_id, event
        assert access_line(json_server, request_id)["status"] == answer.status_code
        assert (event["ip"], event["user_agent"]) == ("127.0.0.1", "kyc-portal/2.1"), event
    operator = [(e["kind"], e["actor"]) for e in trail if e["kind"].startswith("hold")]
    assert operator[0] == ("hold_set", "compliance-team")
    assert operator[1][0] == "hold_released"
    assert operator[1][1]  # the OS user who ran it
