"""Isolation matrix: a second partner, with valid credentials of its own, aims every
endpoint that takes an id, a link or a replay key at what the first partner holds.

The rule per endpoint (DESIGN 2.1, 2.4, 3):

- ``GET /file/{id}``: an id is only ever the caller's. Another partner's id answers
  exactly as an id nobody has (404 ``file_not_found``), so the answer is no oracle for
  whether it exists. ``HEAD`` is not served there (405 for any id alike).
- ``GET /links/...`` (and ``HEAD``): a link is a bearer credential by design, "anyone
  holding it" gets the exact bytes for 60 minutes; a second partner's token changes
  nothing. What a partner cannot do is make a link: its own link's ``expires`` and
  ``signature`` on the first partner's key are refused (403 ``link_invalid``).
- ``Request-Id`` on the signed endpoints and ``Idempotency-Key``/``Request-Id`` on
  ``POST /file``: replay records are per client. The same key from another partner is a
  new request, answered with that partner's own token, requirements or file.

Each case is tallied as ``isolation``, "accepted" meaning the second partner got the
first partner's data (only the link cases, by design).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest

from tests.support import samples
from tests.support.partner import FILE_PATH, PREFIX, TOKEN_PATH, Partner, Parts
from tests.support.server import Server
from tests.support.vectors import server_errors, tally

FAMILY = "isolation"
REQUIREMENTS = (
    f"{PREFIX}/file?businessType=PERSONAL&businessLegalEntity=PERSEORANGAN"
    "&brandBusinessLine=RETAIL&businessContactNationality=ID"
)
KEYED_CONTENT = samples.jpeg(seed=50)
TOKEN_BODY = json.dumps({"grant_type": "client_credentials", "valid_time": "60"}).encode()


@dataclass
class Held:
    """One partner's upload: its answer and the exact bytes."""

    answer: dict[str, Any]
    content: bytes

    @property
    def id(self) -> str:
        return str(self.answer["id"])

    @property
    def link(self) -> httpx.URL:
        return httpx.URL(self.answer["link"])


@dataclass
class World:
    server: Server
    first: Partner
    second: Partner
    theirs: Held  # the first partner's
    mine: Held  # the second partner's
    # Keys the first partner used; the second reuses them.
    request_id: str
    upload_key: str
    keyed_id: str  # the file the first partner's keyed upload stored

    def missing_id(self) -> str:
        # Well-formed, same node and prefix, and no row: a millisecond nobody uploaded in.
        prefix, node, millis = self.theirs.id.split("-")
        return f"{prefix}-{node}-{int(millis) - 1:013d}"


def _upload(
    partner: Partner, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    parts: Parts = [
        ("category", (None, "DOCUMENT", None)),
        ("code", (None, "KTP", None)),
        ("file", ("ktp.jpg", content, "image/jpeg")),
    ]
    return partner.http.request(
        "POST", FILE_PATH, files=parts, headers={**partner.auth(), **(headers or {})}
    )


@pytest.fixture(scope="module")
def world(server: Server) -> Iterator[World]:
    first, second = server.new_partner(), server.new_partner()
    held = []
    for seed, partner in enumerate((first, second)):
        content = samples.jpeg(seed=40 + seed)
        answer = _upload(partner, content)
        assert answer.status_code == 200, answer.text
        held.append(Held(answer.json(), content))
    request_id, upload_key = "isolation-request-0001", "isolation-upload-0001"
    token = first.signed("POST", TOKEN_PATH, TOKEN_BODY, request_id=request_id)
    assert token.status_code == 200, token.text
    requirements = first.signed("GET", REQUIREMENTS, None, request_id=request_id + "-get")
    assert requirements.status_code == 200, requirements.text
    keyed = _upload(first, KEYED_CONTENT, {"Idempotency-Key": upload_key})
    assert keyed.status_code == 200, keyed.text
    yield World(server, first, second, held[0], held[1], request_id, upload_key, keyed.json()["id"])
    # A 5xx the server answered to anyone in this module, seen by a client or not.
    assert server_errors(FAMILY, server.metrics_url) == 0


def _seen(response: httpx.Response, *, accepted: bool = False) -> httpx.Response:
    """Tally the cross-partner answer before anything is asserted on it."""
    tally(FAMILY, response.status_code, accepted=accepted)
    assert response.status_code < 500, response.text
    return response


def _same_as_missing(world: World, method: str) -> None:
    """The other's id and an id nobody has get the same answer (the id aside)."""
    http, auth = world.second.http, world.second.auth()
    other = _seen(http.request(method, f"{FILE_PATH}/{world.theirs.id}", headers=auth))
    missing = http.request(method, f"{FILE_PATH}/{world.missing_id()}", headers=auth)
    assert other.status_code == missing.status_code
    # HEAD is not routed there (405 for every id); if it ever is, it must answer 404 too.
    assert other.status_code in ({404} if method == "GET" else {404, 405}), other.text
    assert other.content.replace(world.theirs.id.encode(), b"ID") == missing.content.replace(
        world.missing_id().encode(), b"ID"
    )
    if method != "HEAD":
        assert other.json()["error"]["code"] == "file_not_found"
    for secret in (world.theirs.answer["sha256"], world.theirs.link.path):
        assert secret not in other.text


def _delete_refused(world: World, method: str) -> None:
    """DELETE of the other's id: answered as for an id nobody has, and nothing removed."""
    _same_as_missing(world, method)
    still = world.first.http.request(
        "GET", f"{FILE_PATH}/{world.theirs.id}", headers=world.first.auth()
    )
    assert still.status_code == 200, still.text
    assert httpx.get(still.json()["link"], timeout=30).content == world.theirs.content


def _link_held(world: World, method: str) -> None:
    """A link is a bearer credential: whoever holds it gets the exact bytes."""
    link = world.theirs.link
    response = httpx.request(method, str(link), headers=world.second.auth(), timeout=30)
    _seen(response, accepted=True)
    assert response.status_code == 200, response.text
    assert response.headers["content-length"] == str(len(world.theirs.content))
    assert response.content == (world.theirs.content if method == "GET" else b"")


def _link_spliced(world: World, method: str) -> None:
    """The second partner's own expires/signature on the first partner's key."""
    own = parse_qs(world.mine.link.query.decode())
    spliced = world.theirs.link.copy_with(
        query=f"expires={own['expires'][0]}&signature={own['signature'][0]}".encode()
    )
    response = _seen(httpx.request(method, str(spliced), headers=world.second.auth(), timeout=30))
    assert response.status_code == 403, response.text
    if method == "GET":
        assert response.json()["error"]["code"] == "link_invalid"
    assert world.theirs.content not in response.content


def _token_request_id(world: World, method: str) -> None:
    """The first partner's Request-Id on the second's POST /token: a token of its own."""
    response = _seen(
        world.second.signed(method, TOKEN_PATH, TOKEN_BODY, request_id=world.request_id)
    )
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
    assert claims["user"] == {"businessServiceClientId": world.second.client_id}


def _requirements_request_id(world: World, method: str) -> None:
    """The first partner's Request-Id on the second's GET /file: answered, not replayed."""
    response = _seen(
        world.second.signed(method, REQUIREMENTS, None, request_id=world.request_id + "-get")
    )
    assert response.status_code == 200, response.text
    assert "business" in response.json()


def _upload_key(world: World, method: str) -> None:
    """The first partner's Idempotency-Key and bytes on the second's upload: the very
    request a shared replay record would answer with the first partner's file."""
    assert method == "POST"
    content = KEYED_CONTENT
    response = _seen(_upload(world.second, content, {"Idempotency-Key": world.upload_key}))
    assert response.status_code == 200, response.text
    assert response.headers.get("idempotent-replayed") is None
    answer = response.json()
    assert answer["sha256"] == samples.sha256(content)
    assert answer["id"] != world.keyed_id
    mine = world.second.http.request(
        "GET", f"{FILE_PATH}/{answer['id']}", headers=world.second.auth()
    )
    assert mine.status_code == 200, mine.text


Probe = Callable[[World, str], None]
MATRIX: list[tuple[str, str, Probe]] = [
    ("GET", "/file/{id}", _same_as_missing),
    ("HEAD", "/file/{id}", _same_as_missing),
    ("DELETE", "/file/{id}", _delete_refused),
    ("GET", "/links/{key} held", _link_held),
    ("HEAD", "/links/{key} held", _link_held),
    ("GET", "/links/{key} spliced", _link_spliced),
    ("HEAD", "/links/{key} spliced", _link_spliced),
    ("POST", "/token Request-Id", _token_request_id),
    ("GET", "/file Request-Id", _requirements_request_id),
    ("POST", "/file Idempotency-Key", _upload_key),
]


@pytest.mark.parametrize(
    ("method", "probe"),
    [(method, probe) for method, _, probe in MATRIX],
    ids=[f"{method} {what}" for method, what, _ in MATRIX],
)
def test_a_second_partner_gets_nothing_of_the_first(
    world: World, method: str, probe: Probe
) -> None:
    probe(world, method)
