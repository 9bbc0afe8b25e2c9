"""Each operation in the OpenAPI document lists exactly the statuses it answers.

Every documented (operation, status) is provoked here through the real app, and every
answer it gives is checked against the document: its status listed for the operation and
its code named under that status. The statuses an in-process app cannot be driven to
(a stopped database, a full disk) are provoked on a real server by the tests ``ELSEWHERE``
names.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import samples
from tests.support.fakes import StreamedBody, multipart, multipart_type
from tests.support.inprocess import InProcess
from tests.support.partner import FILE_PATH, PREFIX, Partner

TOKEN = ("post", f"{PREFIX}/token")
REQUIREMENTS = ("get", f"{PREFIX}/file")
UPLOAD = ("post", f"{PREFIX}/file")
DESCRIBE = ("get", f"{PREFIX}/file/{{file_id}}")
DELETE = ("delete", f"{PREFIX}/file/{{file_id}}")
REVOKE = ("post", f"{PREFIX}/file/{{file_id}}/links/revoke")
EVENTS = ("get", f"{PREFIX}/file/{{file_id}}/events")
LIST = ("get", f"{PREFIX}/files")
LINK = ("get", "/links/{key}")
JWKS = ("get", "/.well-known/jwks.json")
HEALTHZ = ("get", "/healthz")
READYZ = ("get", "/readyz")

GRANT = {"grant_type": "client_credentials"}
QUERY = (
    "businessType=PERSONAL&businessLegalEntity=PERSEORANGAN&brandBusinessLine=RETAIL"
    "&businessContactNationality=ID"
)

# Provoked against a real `berkas serve` on PostgreSQL + RGW, stopped under it, and on a
# tmpfs filled to the brim: an in-process app on SQLite and local disk cannot lose them.
ELSEWHERE = {
    (TOKEN, 503): "tests/e2e/test_store_faults.py",
    (REQUIREMENTS, 503): "tests/e2e/test_store_faults.py",
    (UPLOAD, 503): "tests/e2e/test_store_faults.py",
    (DESCRIBE, 503): "tests/e2e/test_store_faults.py",
    (DELETE, 503): "tests/e2e/test_store_faults.py",
    (REVOKE, 503): "tests/e2e/test_store_faults.py",
    (EVENTS, 503): "tests/e2e/test_store_faults.py",
    (LIST, 503): "tests/e2e/test_store_faults.py",
    (LINK, 503): "tests/e2e/test_store_faults.py",
    (LINK, 500): "tests/e2e/test_encryption.py",
    (UPLOAD, 507): "tests/e2e/test_disk_full.py",
}


class Ctx:
    """The apps under test: a normal one, one whose clients get two requests, and one
    whose blob store was removed under it."""

    def __init__(self, root: Path) -> None:
        self.app = InProcess(root / "normal")
        self.limited = InProcess(root / "limited", rate_limit_per_second=0.001, rate_limit_burst=2)
        self.partner = self.app.partner()
        upload = self.partner.upload(samples.jpeg(seed=1))
        assert upload.status_code == 200, upload.text
        self.stored: dict[str, Any] = upload.json()

    def close(self) -> None:
        self.app.close()
        self.limited.close()

    def stranger(self) -> Partner:
        return Partner(self.app.http, self.partner.client_id, "not-the-secret")

    def over_the_limit(self, call: Callable[[Partner], httpx.Response]) -> httpx.Response:
        # Two requests per client (its token counts), then 429 until the bucket refills.
        partner = self.limited.partner()
        for _ in range(3):
            response = call(partner)
            if response.status_code == 429:
                break
        return response


def _link_path(link: str) -> str:
    return httpx.URL(link).raw_path.decode()


def _idempotent(ctx: Ctx, key: str, content: bytes) -> httpx.Response:
    parts = [("category", (None, "LOGO", None)), ("file", ("a.png", content, "image/png"))]
    headers = {**ctx.partner.auth(), "Idempotency-Key": key}
    return ctx.app.http.request("POST", FILE_PATH, files=parts, headers=headers)


def _requirements(partner: Partner, **kwargs: Any) -> httpx.Response:
    return partner.signed("GET", FILE_PATH, query=kwargs.pop("query", QUERY), **kwargs)


def _describe(partner: Partner, file_id: str) -> httpx.Response:
    return partner.http.request("GET", f"{FILE_PATH}/{file_id}", headers=partner.auth())


def _delete(partner: Partner, file_id: str) -> httpx.Response:
    return partner.http.request("DELETE", f"{FILE_PATH}/{file_id}", headers=partner.auth())


def _delete_held(ctx: Ctx, partner: Partner) -> httpx.Response:
    file_id = partner.upload(samples.jpeg(seed=6)).json()["id"]
    ctx.app.services.files.set_hold(file_id, True)
    return _delete(partner, file_id)


def _revoke(partner: Partner, file_id: str) -> httpx.Response:
    path = f"{FILE_PATH}/{file_id}/links/revoke"
    return partner.http.request("POST", path, headers=partner.auth())


def _events(partner: Partner, file_id: str) -> httpx.Response:
    return partner.http.request("GET", f"{FILE_PATH}/{file_id}/events", headers=partner.auth())


def _list(partner: Partner, query: str = "") -> httpx.Response:
    return partner.http.request("GET", f"{PREFIX}/files?{query}", headers=partner.auth())


def _replay_of_deleted(ctx: Ctx) -> httpx.Response:
    first = _idempotent(ctx, "key-then-deleted", samples.png(seed=5))
    assert first.status_code == 200, first.text
    assert _delete(ctx.partner, first.json()["id"]).status_code == 204
    return _idempotent(ctx, "key-then-deleted", samples.png(seed=5))


def _twice(call: Callable[[], httpx.Response]) -> httpx.Response:
    first = call()
    assert first.status_code == 200, first.text
    return call()


def _declared_oversize(ctx: Ctx) -> httpx.Response:
    body = StreamedBody(multipart(("category", "LOGO"), ("file", samples.png(), "a.png")))
    headers = {
        **ctx.partner.auth(),
        "Content-Type": multipart_type(),
        "Content-Length": str(10**12),
    }
    return ctx.app.http.post(FILE_PATH, content=body, headers=headers)


def _missing_bytes(ctx: Ctx, root: Path) -> httpx.Response:
    # The row is there, the bytes are not (an operator's mistake on the volume).
    app = InProcess(root / "missing")
    try:
        stored = app.partner().upload(samples.jpeg(seed=2)).json()
        for path in app.blobs():
            path.unlink()
        return app.http.get(_link_path(stored["link"]))
    finally:
        app.close()


def _blobs_gone(root: Path, path: str) -> httpx.Response:
    app = InProcess(root / "gone")
    try:
        shutil.rmtree(app.data_dir / "blobs")
        return app.http.get(path)
    finally:
        app.close()


def _cases(ctx: Ctx, root: Path) -> list[tuple[tuple[str, str], Callable[[], httpx.Response]]]:
    partner = ctx.partner
    http = ctx.app.http
    link = _link_path(ctx.stored["link"])
    return [
        (TOKEN, partner.get_token),
        (TOKEN, lambda: partner.token_request(b"{not json")),
        (TOKEN, lambda: partner.token_request({"grant_type": "password"})),
        (TOKEN, lambda: ctx.stranger().get_token()),
        (TOKEN, lambda: _twice(lambda: partner.token_request(GRANT, request_id="token-once"))),
        (TOKEN, lambda: partner.token_request(b" " * (2 * 1024 * 1024))),
        (TOKEN, lambda: ctx.over_the_limit(lambda p: p.get_token())),
        (REQUIREMENTS, lambda: _requirements(partner)),
        (REQUIREMENTS, lambda: _requirements(partner, query="businessType=PERSONAL")),
        (REQUIREMENTS, lambda: http.get(f"{FILE_PATH}?{QUERY}")),
        (REQUIREMENTS, lambda: _twice(lambda: _requirements(partner, request_id="req-once"))),
        (REQUIREMENTS, lambda: ctx.over_the_limit(_requirements)),
        (UPLOAD, lambda: partner.upload(samples.png(), category="LOGO", code=None)),
        (UPLOAD, lambda: partner.upload(samples.png(), category="NOT_A_CATEGORY", code=None)),
        (UPLOAD, lambda: http.post(FILE_PATH, files=[("category", (None, "LOGO", None))])),
        (UPLOAD, lambda: _twice(lambda: _idempotent(ctx, "key-once", samples.png()))),
        (UPLOAD, lambda: _idempotent(ctx, "key-once", samples.png(seed=9))),
        (UPLOAD, lambda: _declared_oversize(ctx)),
        (UPLOAD, lambda: partner.upload(b"plain text, not an image", category="LOGO", code=None)),
        (UPLOAD, lambda: partner.upload(None, file_url="http://127.0.0.1/ktp.jpg")),
        (UPLOAD, lambda: ctx.over_the_limit(lambda p: p.upload(samples.png(), code=None))),
        (DESCRIBE, lambda: _describe(partner, ctx.stored["id"])),
        (DESCRIBE, lambda: http.get(f"{FILE_PATH}/{ctx.stored['id']}")),
        (DESCRIBE, lambda: _describe(partner, "DCM-0001-0000000000000")),
        (DESCRIBE, lambda: _describe(ctx.app.partner(), ctx.stored["id"])),
        (DESCRIBE, lambda: ctx.over_the_limit(lambda p: _describe(p, "DCM-0001-1"))),
        (UPLOAD, lambda: _replay_of_deleted(ctx)),
        (DELETE, lambda: _delete(partner, partner.upload(samples.jpeg(seed=3)).json()["id"])),
        (DELETE, lambda: http.delete(f"{FILE_PATH}/{ctx.stored['id']}")),
        (DELETE, lambda: _delete(ctx.app.partner(), ctx.stored["id"])),
        (DELETE, lambda: ctx.over_the_limit(lambda p: _delete(p, "DCM-0001-1"))),
        (DELETE, lambda: _delete_held(ctx, partner)),
        (REVOKE, lambda: _revoke(partner, partner.upload(samples.jpeg(seed=4)).json()["id"])),
        (REVOKE, lambda: http.post(f"{FILE_PATH}/{ctx.stored['id']}/links/revoke")),
        (REVOKE, lambda: _revoke(ctx.app.partner(), ctx.stored["id"])),
        (REVOKE, lambda: ctx.over_the_limit(lambda p: _revoke(p, "DCM-0001-1"))),
        (EVENTS, lambda: _events(partner, ctx.stored["id"])),
        (EVENTS, lambda: http.get(f"{FILE_PATH}/{ctx.stored['id']}/events")),
        (EVENTS, lambda: _events(ctx.app.partner(), ctx.stored["id"])),
        (EVENTS, lambda: ctx.over_the_limit(lambda p: _events(p, "DCM-0001-1"))),
        (LIST, lambda: _list(partner, "limit=5")),
        (LIST, lambda: _list(partner, "limit=500")),
        (LIST, lambda: http.get(f"{PREFIX}/files")),
        (LIST, lambda: ctx.over_the_limit(_list)),
        (LINK, lambda: http.get(link)),
        (LINK, lambda: http.get(link.replace("signature=", "signature=x"))),
        (LINK, lambda: http.get(link.split("?")[0])),
        (LINK, lambda: _missing_bytes(ctx, root)),
        (JWKS, lambda: http.get("/.well-known/jwks.json")),
        (HEALTHZ, lambda: http.get("/healthz")),
        (READYZ, lambda: http.get("/readyz")),
        (READYZ, lambda: _blobs_gone(root, "/readyz")),
    ]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    context = Ctx(tmp_path_factory.mktemp("statuses"))
    yield context
    context.close()


@pytest.fixture(scope="module")
def spec(ctx: Ctx) -> dict[str, Any]:
    answer = ctx.app.http.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def _documented_codes(response: dict[str, Any]) -> set[str]:
    examples = response.get("content", {}).get("application/json", {}).get("examples", {})
    return set(examples) | set(re.findall(r"`([a-z_]+)`", response.get("description", "")))


def test_every_answer_is_documented_and_every_documented_status_is_answered(
    ctx: Ctx, spec: dict[str, Any], tmp_path: Path
) -> None:
    answered: set[tuple[tuple[str, str], int]] = set()
    for operation, call in _cases(ctx, tmp_path):
        response = call()
        status = response.status_code
        documented = spec["paths"][operation[1]][operation[0]]["responses"]
        where = f"{operation[0].upper()} {operation[1]} answered {status}: {response.text[:200]}"
        assert str(status) in documented, where
        body = response.json() if status >= 400 else {}
        if status >= 400 and "error" in body:  # not a readiness report, not a replay
            code = body["error"]["code"]
            assert code in _documented_codes(documented[str(status)]), where
        answered.add((operation, status))

    listed = {
        ((method, path), int(status))
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        for status in operation["responses"]
    }
    assert listed - answered == set(ELSEWHERE), "documented but never answered"
    assert answered <= listed


def test_no_operation_lists_the_frameworks_unsent_422(spec: dict[str, Any]) -> None:
    # A framework validation failure is answered 400 invalid_request in the envelope.
    text = json.dumps(spec)
    assert "HTTPValidationError" not in text
    assert "422" not in spec["paths"]["/links/{key}"]["get"]["responses"]
    assert "422" in spec["paths"][UPLOAD[1]]["post"]["responses"]  # file_url refusals


def test_every_reference_and_security_requirement_resolves(spec: dict[str, Any]) -> None:
    # A client generator fails on a dangling $ref or an undeclared scheme.
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    references = list(walk(spec))
    assert references, "the document references its schemas"
    for reference in references:
        assert reference.startswith("#/"), reference
        target: Any = spec
        for part in reference[2:].split("/"):
            assert isinstance(target, dict), reference
            assert part in target, reference
            target = target[part]
    schemes = spec["components"]["securitySchemes"]
    secured = 0
    for operations in spec["paths"].values():
        for operation in operations.values():
            for requirement in operation.get("security", []):
                assert set(requirement) <= set(schemes)
                secured += 1
    assert secured >= 2  # POST /file and GET /file/{id} at least


def test_the_document_names_its_server_and_describes_its_tags(spec: dict[str, Any]) -> None:
    assert spec["servers"] == [{"url": "/", "description": "this berkas server"}]
    described = {tag["name"] for tag in spec["tags"] if tag.get("description")}
    used = {
        tag
        for operations in spec["paths"].values()
        for operation in operations.values()
        for tag in operation.get("tags", [])
    }
    assert used <= described
