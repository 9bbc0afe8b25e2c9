"""GET /files in-process (docs/design.md 3.5): pages, filters, cursors and every refusal of
a bad query, each with its own code and a message naming the parameter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import samples
from tests.support.inprocess import InProcess
from tests.support.partner import PREFIX, Partner

LIST_PATH = f"{PREFIX}/files"


class Ctx:
    def __init__(self, root: Path) -> None:
        self.app = InProcess(root)
        self.partner = self.app.partner()
        self.other = self.app.partner()
        self.ids: list[str] = []  # oldest first
        for n in range(7):
            kind = ("DOCUMENT", "KTP") if n % 2 else ("LOGO", None)
            answer = self.partner.upload(samples.png(seed=n), category=kind[0], code=kind[1])
            assert answer.status_code == 200, answer.text
            self.ids.append(answer.json()["id"])
        theirs = self.other.upload(samples.png(seed=99), category="LOGO", code=None)
        self.theirs = theirs.json()["id"]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    made = Ctx(tmp_path_factory.mktemp("list"))
    yield made
    made.app.close()


def listing(partner: Partner, query: str = "") -> httpx.Response:
    url = f"{LIST_PATH}?{query}" if query else LIST_PATH
    return partner.http.request("GET", url, headers=partner.auth())


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["data"]]


def test_the_default_page_is_ten_newest_first_without_links(ctx: Ctx) -> None:
    answer = listing(ctx.partner)

    assert ids(answer) == ctx.ids[::-1]
    assert answer.json()["has_more"] is False
    item: dict[str, Any] = answer.json()["data"][0]
    described = ctx.partner.http.request(
        "GET", f"{PREFIX}/file/{item['id']}", headers=ctx.partner.auth()
    ).json()
    assert "link" not in item
    assert "link_expires_at" not in item
    assert item == {k: v for k, v in described.items() if not k.startswith("link")}


def test_pages_forwards_and_backwards(ctx: Ctx) -> None:
    newest = ctx.ids[::-1]
    first = listing(ctx.partner, "limit=3")
    assert (ids(first), first.json()["has_more"]) == (newest[:3], True)
    second = listing(ctx.partner, f"limit=3&starting_after={newest[2]}")
    assert (ids(second), second.json()["has_more"]) == (newest[3:6], True)
    last = listing(ctx.partner, f"limit=3&starting_after={newest[5]}")
    assert (ids(last), last.json()["has_more"]) == (newest[6:], False)
    back = listing(ctx.partner, f"limit=2&ending_before={newest[3]}")
    assert (ids(back), back.json()["has_more"]) == (newest[1:3], True)
    top = listing(ctx.partner, f"limit=2&ending_before={newest[1]}")
    assert (ids(top), top.json()["has_more"]) == (newest[:1], False)


def test_filters(ctx: Ctx) -> None:
    documents = [i for n, i in enumerate(ctx.ids) if n % 2][::-1]
    logos = [i for n, i in enumerate(ctx.ids) if not n % 2][::-1]
    assert ids(listing(ctx.partner, "category=DOCUMENT")) == documents
    assert ids(listing(ctx.partner, "code=KTP")) == documents
    assert ids(listing(ctx.partner, "category=LOGO")) == logos
    assert ids(listing(ctx.partner, "code=NPWP_BADAN")) == []
    created = [item["created_at"] for item in listing(ctx.partner).json()["data"]][::-1]
    # created_at as GET /file/{id} shows it: gte includes that file, lt excludes it.
    assert ids(listing(ctx.partner, f"created_gte={created[4]}")) == ctx.ids[4:][::-1]
    assert ids(listing(ctx.partner, f"created_lt={created[4]}")) == ctx.ids[:4][::-1]
    both = f"created_gte={created[1]}&created_lt={created[3]}&category=DOCUMENT"
    assert ids(listing(ctx.partner, both)) == [ctx.ids[1]]
    assert ids(listing(ctx.partner, "created_gte=2000-01-01&created_lt=2000-01-02")) == []


def test_another_partners_files_never_show(ctx: Ctx) -> None:
    assert ids(listing(ctx.other)) == [ctx.theirs]
    assert ctx.theirs not in ids(listing(ctx.partner, "limit=100"))


@pytest.mark.parametrize(
    ("query", "code", "names"),
    [
        ("limit=0", "limit_invalid", "limit 0"),
        ("limit=101", "limit_invalid", "1 to 100"),
        ("limit=ten", "limit_invalid", '"ten"'),
        ("limit=-1", "limit_invalid", '"-1"'),
        ("limit=1&limit=2", "parameter_repeated", "limit"),
        ("page=2", "unknown_parameter", '"page"'),
        ("starting_after=DCM-0001-1&ending_before=DCM-0001-2", "cursor_conflict", "both"),
        ("starting_after=", "cursor_invalid", "starting_after is empty"),
        ("starting_after=DCM-0001-0000000000001", "cursor_invalid", "no file of yours"),
        ("ending_before=nonsense", "cursor_invalid", "ending_before"),
        ("category=document", "category_invalid", "did you mean DOCUMENT?"),
        ("category=PASSPORT", "category_invalid", "OWNER_LIVENESS"),
        ("code=ktp", "code_invalid", "did you mean KTP?"),
        ("created_gte=yesterday", "created_invalid", "RFC 3339"),
        ("created_gte=2026-12-07T08:45:42", "created_invalid", "add Z or an offset"),
        ("created_gte=2026-12-08&created_lt=2026-12-07", "created_invalid", "not before"),
        ("limit=1000000", "limit_invalid", "out of range"),
        # Past datetime's range once in UTC: refused, not a 500.
        ("created_lt=9999-12-31T23:59:59-01:00", "created_invalid", "RFC 3339"),
        ("created_gte=0001-01-01T00:00:00%2B01:00", "created_invalid", "RFC 3339"),
        # ISO 8601 forms Python reads but RFC 3339 does not have.
        ("created_gte=20261207", "created_invalid", "RFC 3339"),
        ("created_gte=2026-W49-1", "created_invalid", "RFC 3339"),
        ("created_gte=2026-12-07T08:45:42%2B07:00:30", "created_invalid", "RFC 3339"),
    ],
)
def test_bad_queries_get_a_precise_error(ctx: Ctx, query: str, code: str, names: str) -> None:
    answer = listing(ctx.partner, query)

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["type"]) == (code, "invalid_request_error")
    assert names in error["message"]


def test_another_partners_id_as_cursor_is_answered_as_an_unknown_one(ctx: Ctx) -> None:
    theirs = listing(ctx.partner, f"starting_after={ctx.theirs}").json()["error"]
    # Same node, a millisecond in 1970: no file of anyone's (a neighbouring millisecond
    # could be one of the caller's own).
    unknown_id = ctx.theirs[: -len("1740817815000")] + "0000000000001"
    unknown = listing(ctx.partner, f"starting_after={unknown_id}").json()["error"]

    assert theirs["code"] == unknown["code"] == "cursor_invalid"
    assert theirs["message"].replace(ctx.theirs, "X") == unknown["message"].replace(unknown_id, "X")


def test_a_bearer_token_is_required(ctx: Ctx) -> None:
    answer = ctx.app.http.request("GET", LIST_PATH)

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "token_missing"


def test_deleted_files_leave_the_list_and_still_mark_their_place(tmp_path: Path) -> None:
    app = InProcess(tmp_path)
    try:
        partner = app.partner()
        made = [partner.upload(samples.png(seed=n), category="LOGO", code=None) for n in range(5)]
        made_ids = [answer.json()["id"] for answer in made][::-1]
        page = ids(listing(partner, "limit=2"))
        for file_id in page:  # list and delete, page by page
            gone = partner.http.request(
                "DELETE", f"{PREFIX}/file/{file_id}", headers=partner.auth()
            )
            assert gone.status_code == 204

        assert ids(listing(partner, f"limit=2&starting_after={page[-1]}")) == made_ids[2:4]
        assert ids(listing(partner)) == made_ids[2:]
    finally:
        app.close()
