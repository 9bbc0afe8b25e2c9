"""The file list against a real ``berkas serve``, on both backends (docs/design.md 3.5):
250 files of one partner paged 20 at a time, forwards and backwards, each exactly once and
none of another partner's; the filters; deleted files absent; bad queries refused; the
SDK's auto-paging iterators and the partner and operator CLIs over the same files."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from berkas.cli.main import main
from berkas.client import AsyncBerkasClient, BerkasClient, InvalidRequestError
from tests.support import samples
from tests.support.partner import PREFIX, Partner
from tests.support.server import Server

MANY = 250
LIST_PATH = f"{PREFIX}/files"
# The cheapest accepted document: a 4 x 4 PNG (a few hundred bytes), one per seed.
KINDS = [("DOCUMENT", "KTP"), ("DOCUMENT", "NPWP_BADAN"), ("LOGO", None), ("PHOTO_PROOF", None)]


@dataclass
class Uploaded:
    partner: Partner
    other: Partner
    by_id: dict[str, dict[str, Any]]  # every upload answer of ``partner``
    theirs: set[str]

    @property
    def newest_first(self) -> list[str]:
        return sorted(self.by_id, key=lambda i: (self.by_id[i]["created_at"], i), reverse=True)


def _upload(partner: Partner, n: int) -> dict[str, Any]:
    category, code = KINDS[n % len(KINDS)]
    answer = partner.upload(samples.png(4, 4, seed=n), category=category, code=code)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


@pytest.fixture(scope="module")
def uploaded(server: Server) -> Uploaded:
    partner, other = server.new_partner(), server.new_partner()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda n: _upload(partner, n), range(MANY)))
        theirs = list(pool.map(lambda n: _upload(other, 1000 + n), range(5)))
    by_id = {a["id"]: a for a in answers}
    assert len(by_id) == MANY
    # created_at as the list shows it (the upload answer has no created_at).
    for item in _all(partner):
        by_id[item["id"]]["created_at"] = item["created_at"]
    return Uploaded(partner, other, by_id, {a["id"] for a in theirs})


def listing(partner: Partner, **params: Any) -> httpx.Response:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return partner.http.request("GET", f"{LIST_PATH}?{query}", headers=partner.auth())


def _page(partner: Partner, **params: Any) -> dict[str, Any]:
    answer = listing(partner, **params)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def _all(partner: Partner, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = _page(partner, limit=100, **params)
    items += page["data"]
    while page["has_more"]:
        page = _page(partner, limit=100, starting_after=items[-1]["id"], **params)
        items += page["data"]
    return items


def test_paging_forwards_by_20_yields_each_file_once_newest_first(uploaded: Uploaded) -> None:
    seen: list[str] = []
    pages = 0
    page = _page(uploaded.partner, limit=20)
    while True:
        pages += 1
        assert 1 <= len(page["data"]) <= 20
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        page = _page(uploaded.partner, limit=20, starting_after=seen[-1])

    assert pages == 13  # 12 full pages and 10 files
    assert len(seen) == len(set(seen)) == MANY
    assert seen == uploaded.newest_first
    assert not set(seen) & uploaded.theirs


def test_paging_backwards_with_ending_before_yields_each_file_once(uploaded: Uploaded) -> None:
    oldest = uploaded.newest_first[-1]
    seen = [oldest]
    while True:
        page = _page(uploaded.partner, limit=20, ending_before=seen[0])
        seen = [item["id"] for item in page["data"]] + seen  # each page newest first
        if not page["has_more"]:
            break

    assert seen == uploaded.newest_first


def test_each_item_is_what_get_file_shows_without_its_link(uploaded: Uploaded) -> None:
    item = _page(uploaded.partner, limit=1)["data"][0]
    partner = uploaded.partner
    described = partner.http.request("GET", f"{PREFIX}/file/{item['id']}", headers=partner.auth())

    assert item == {
        k: v for k, v in described.json().items() if k not in ("link", "link_expires_at")
    }
    assert item["sha256"] == uploaded.by_id[item["id"]]["sha256"]


@pytest.mark.parametrize(("category", "code"), [*KINDS, ("DOCUMENT", None)])
def test_category_and_code_filters(uploaded: Uploaded, category: str, code: str | None) -> None:
    params = {"category": category} | ({"code": code} if code else {})
    expected = [
        i
        for i in uploaded.newest_first
        if uploaded.by_id[i]["category"] == category
        and (code is None or uploaded.by_id[i]["code"] == code)
    ]

    assert [item["id"] for item in _all(uploaded.partner, **params)] == expected
    assert expected


def test_code_alone_filters_documents(uploaded: Uploaded) -> None:
    got = [item["id"] for item in _all(uploaded.partner, code="KTP")]
    assert got == [i for i in uploaded.newest_first if uploaded.by_id[i]["code"] == "KTP"]


def test_created_filters_take_created_at_as_the_list_shows_it(uploaded: Uploaded) -> None:
    order = uploaded.newest_first
    cut = uploaded.by_id[order[100]]["created_at"]
    newer = [i for i in order if uploaded.by_id[i]["created_at"] >= cut]
    older = [i for i in order if uploaded.by_id[i]["created_at"] < cut]

    assert [item["id"] for item in _all(uploaded.partner, created_gte=cut)] == newer
    assert [item["id"] for item in _all(uploaded.partner, created_lt=cut)] == older
    assert order[100] in newer
    assert _page(uploaded.partner, created_lt="2000-01-01")["data"] == []


def test_another_partner_sees_only_its_own(uploaded: Uploaded) -> None:
    assert {item["id"] for item in _all(uploaded.other)} == uploaded.theirs
    refused = listing(uploaded.partner, starting_after=next(iter(uploaded.theirs)))
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "cursor_invalid"


def test_deleted_files_are_absent(server: Server) -> None:
    partner = server.new_partner()
    made = [_upload(partner, 2000 + n)["id"] for n in range(6)]
    for gone in made[1::2]:
        answer = partner.http.request("DELETE", f"{PREFIX}/file/{gone}", headers=partner.auth())
        assert answer.status_code == 204

    assert [item["id"] for item in _all(partner)] == made[0::2][::-1]
    # A deleted file's id still continues the list from its place.
    after = _page(partner, starting_after=made[3])["data"]
    assert [item["id"] for item in after] == [made[2], made[0]]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": 0}, "limit_invalid"),
        ({"limit": 101}, "limit_invalid"),
        ({"starting_after": "DCM-0001-1", "ending_before": "DCM-0001-2"}, "cursor_conflict"),
        ({"starting_after": "DCM-0001-0000000000001"}, "cursor_invalid"),
        ({"category": "SELFIE"}, "category_invalid"),
        ({"code": "ktp"}, "code_invalid"),
        ({"created_gte": "last week"}, "created_invalid"),
        ({"sort": "asc"}, "unknown_parameter"),
    ],
)
def test_bad_queries_are_refused_precisely(
    uploaded: Uploaded, params: dict[str, Any], code: str
) -> None:
    answer = listing(uploaded.partner, **params)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code
    assert "Traceback" not in answer.text


def _sdk(server: Server, partner: Partner) -> BerkasClient:
    return BerkasClient(server.url, partner.client_id, partner.secret_key)


def test_the_sdk_pages_automatically_sync_and_async(server: Server, uploaded: Uploaded) -> None:
    with _sdk(server, uploaded.partner) as client:
        every = [f.id for f in client.list_files(page_size=20)]
        documents = list(client.list_files(category="DOCUMENT"))
        page = client.list_files_page(limit=5)
        backwards = [f.id for f in client.list_files(ending_before=every[-1], page_size=30)]
        with pytest.raises(InvalidRequestError) as refused:
            client.list_files_page(limit=500)

    assert every == uploaded.newest_first
    assert all(isinstance(f.created_at, datetime) for f in documents)
    assert {f.category for f in documents} == {"DOCUMENT"}
    assert [f.id for f in page.files] == every[:5]
    assert page.has_more is True
    assert backwards == every[:-1][::-1]  # nearest the cursor first
    assert refused.value.code == "limit_invalid"

    async def gather() -> list[str]:
        partner = uploaded.partner
        async with AsyncBerkasClient(server.url, partner.client_id, partner.secret_key) as aio:
            return [f.id async for f in aio.list_files(page_size=45)]

    assert asyncio.run(gather()) == uploaded.newest_first


def _partner_cli(server: Server, partner: Partner, *args: str) -> Any:
    env = {
        "BERKAS_CLIENT_BASE_URL": server.url,
        "BERKAS_CLIENT_ID": partner.client_id,
        "BERKAS_CLIENT_SECRET": partner.secret_key,
    }
    return CliRunner().invoke(main, ["partner", "files", *args], env=env)


def test_the_partner_cli_lists_as_a_table_or_json_following_pages(
    server: Server, uploaded: Uploaded
) -> None:
    every = _partner_cli(server, uploaded.partner, "--json")
    assert every.exit_code == 0, every.output
    assert [f["id"] for f in json.loads(every.stdout)] == uploaded.newest_first

    capped = _partner_cli(server, uploaded.partner, "--limit", "150", "--category", "logo")
    assert capped.exit_code == 0, capped.output
    lines = capped.stdout.splitlines()
    logos = [i for i in uploaded.newest_first if uploaded.by_id[i]["category"] == "LOGO"]
    assert lines[0].split() == ["ID", "CATEGORY", "CODE", "TYPE", "SIZE", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == logos[:150]

    refused = _partner_cli(server, uploaded.partner, "--created-gte", "soon")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("created_invalid: created_gte")


def test_the_operator_lists_any_clients_files_and_shows_one(
    server: Server, uploaded: Uploaded
) -> None:
    every = json.loads(server.cli("files", "list", "--json"))
    mine = json.loads(server.cli("files", "list", "--client", uploaded.partner.client_id, "--json"))
    ktp = json.loads(server.cli("files", "list", "--code", "KTP", "--limit", "7", "--json"))
    table = server.cli("files", "list", "--client", uploaded.other.client_id)

    ids = {f["id"] for f in every}
    assert set(uploaded.by_id) | uploaded.theirs <= ids
    assert [f["id"] for f in mine] == uploaded.newest_first
    assert len(ktp) == 7
    assert {f["code"] for f in ktp} == {"KTP"}
    assert table.splitlines()[0].split()[:3] == ["ID", "CLIENT", "CATEGORY"]
    assert {line.split()[0] for line in table.splitlines()[1:]} == uploaded.theirs

    file_id = uploaded.newest_first[0]
    shown = json.loads(server.cli("files", "show", file_id, "--json"))
    assert (shown["id"], shown["state"], shown["client_id"]) == (
        file_id,
        "stored",
        uploaded.partner.client_id,
    )
    assert (shown["legal_hold"], shown["size"]) == (False, uploaded.by_id[file_id]["size"])
    assert shown["events"][0]["kind"] == "uploaded"
    text = server.cli("files", "show", file_id)
    assert f"client_id:        {uploaded.partner.client_id}" in text
    assert "state:            stored" in text


@pytest.fixture(scope="module", autouse=True)
def _no_tracebacks(server: Server) -> Iterator[None]:
    yield
    assert "Traceback" not in server.output()
