"""A 405 names, in ``Allow``, every method its path really has (RFC 9110 section 15.5.6),
for every route of the app: several routes on one path (GET and POST /file) included."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.routing import iter_route_contexts

from tests.support.errors import assert_error
from tests.support.inprocess import InProcess

# Every method a route could declare; the one a path lacks is sent to provoke the 405.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    srv = InProcess(tmp_path_factory.mktemp("allow") / "data")
    yield srv
    srv.close()


def methods_by_path(server: InProcess) -> dict[str, set[str]]:
    """Each route template with the union of the methods of every route on it."""
    table: dict[str, set[str]] = {}
    for context in iter_route_contexts(server.app.routes):
        methods = getattr(context.original_route, "methods", None)
        if context.path and methods:
            table.setdefault(context.path, set()).update(methods)
    return table


def concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "DCM-0001-1700000000000", template)


def test_the_walk_sees_every_kind_of_route(server: InProcess) -> None:
    table = methods_by_path(server)
    # The partner API, the probes, the links, the docs and FastAPI's own document.
    assert table["/adv-core-api/partner/v1.0/file"] == {"GET", "POST"}
    assert {"/healthz", "/links/{key:path}", "/openapi.json", "/docs", "/metrics"} <= set(table)


def test_every_route_answers_a_method_it_lacks_with_all_it_has(server: InProcess) -> None:
    table = methods_by_path(server)
    assert len(table) >= 10
    for template, allowed in sorted(table.items()):
        path = concrete(template)
        for method in (m for m in METHODS if m not in allowed):
            answer = server.http.request(method, path)
            assert answer.status_code == 405, (method, template)
            assert set(answer.headers["allow"].split(", ")) == allowed, (method, template)
            if method == "HEAD":
                continue  # a HEAD answer has no body (RFC 9110 section 9.3.2)
            error = assert_error(answer, 405, "method_not_allowed")
            assert error["message"] == (
                f"{method} is not allowed on this path; it allows {answer.headers['allow']}."
            )
        for method in allowed:  # and what it names is really answered (if refused, not 405)
            assert server.http.request(method, path).status_code != 405, (method, template)


def test_put_on_file_names_get_and_post(server: InProcess) -> None:
    answer = server.http.request("PUT", "/adv-core-api/partner/v1.0/file")

    assert_error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "GET, POST"


def test_a_path_with_no_route_is_a_404_not_a_405(server: InProcess) -> None:
    assert_error(server.http.request("PUT", "/nowhere"), 404, "not_found")


def test_the_docs_assets_answer_their_own_405(server: InProcess) -> None:
    answer = server.http.request("PUT", "/docs/assets/swagger-ui.css")

    assert_error(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "GET, HEAD"
