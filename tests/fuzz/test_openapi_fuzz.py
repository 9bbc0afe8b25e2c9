"""schemathesis against the OpenAPI document a real ``berkas serve`` publishes.

Every operation in ``/openapi.json`` is fuzzed twice: once as a partner would call it
(DOKU-signed, or with a bearer token: ``PartnerAuth`` below), and once with whatever
credentials the generator makes up. Whatever is sent, the server never answers 5xx,
every refusal is the one envelope (DESIGN 2.5), a documented answer matches its schema,
and nothing a refused request carried is stored. ``make test`` runs a bounded number of
examples; ``make fuzz`` (``FUZZ_EXAMPLES``) runs many more.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
import sqlalchemy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, CheckFunction, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from berkas.core import signing
from berkas.core.codes import ErrorType
from berkas.core.wire import API_PREFIX
from tests.support import samples
from tests.support.partner import Partner
from tests.support.postgres import fresh_database, postgres_url
from tests.support.server import Server
from tests.support.vectors import server_errors, tally

pytestmark = pytest.mark.e2e

FAMILY = "openapi-fuzz"
# Examples per operation and mode in the fuzzing phase; `make fuzz` raises it.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
UPLOAD = f"{API_PREFIX}/file"
MODES = ("positive", "negative")
TEXT_FIELDS = ("category", "code", "file_url")
UPLOAD_LABEL = f"POST {UPLOAD}"
LINK_LABEL = "GET /links/{key}"
SIGNED = {("POST", f"{API_PREFIX}/token"), ("GET", f"{API_PREFIX}/file")}
MERCHANTS = [
    {
        "businessType": "PERSONAL",
        "businessLegalEntity": "PERSEORANGAN",
        "brandBusinessLine": "RETAIL",
        "businessContactNationality": "ID",
    },
    {
        "businessType": "CORPORATE",
        "businessLegalEntity": "PT",
        "brandBusinessLine": "MARKETPLACE",
        "businessContactNationality": "SG",
    },
]
# "ID" stands for a real id or key.
ODD_IDS = ["\x00", "ID\x00", "\x00ID", "ID\x01\x7f", "ID\n", "ID\u00e9", "A" * 4096]
ERROR_TYPES = {member.value for member in ErrorType}


class PartnerAuth(requests.auth.AuthBase):
    """Credentials on the request as finally prepared, so the Digest covers the exact bytes.

    The HMAC-signed endpoints (DESIGN 2.1) get the four DOKU headers, computed over the
    body schemathesis serialised; every other partner route gets the bearer token.
    """

    def __init__(self, partner: Partner) -> None:
        self.partner = partner

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path = urlsplit(request.url or "").path
        if (request.method, path) in SIGNED:
            body = request.body.encode() if isinstance(request.body, str) else request.body
            assert body is None or isinstance(body, bytes), "bodies here are never streamed"
            request.headers.update(
                signing.signed_headers(
                    client_id=self.partner.client_id,
                    secret_key=self.partner.secret_key,
                    # A path with its query is signed as often as the bare path (2.1).
                    target=request.path_url,
                    body=body,
                )
            )
        elif path.startswith(API_PREFIX):
            request.headers["Authorization"] = f"Bearer {self.partner.token}"
        return request


@dataclass
class Ledger:
    """What the fuzzer saw: the ids every 2xx upload answer named."""

    uploaded: set[str] = field(default_factory=set)


@dataclass
class Fuzzed:
    server: Server
    database_url: str
    partner: Partner
    other: Partner
    ledger: Ledger
    # Ids and links that exist, so GET /file/{id} and /links/... reach a stored file.
    own_ids: list[str]
    other_ids: list[str]
    keys: list[str]


@pytest.fixture(scope="module", params=["embedded", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Where the server under fuzz keeps its metadata: SQLite, or PostgreSQL (whose text
    refuses what SQLite stores, e.g. NUL)."""
    if request.param == "embedded":
        yield f"sqlite:///{tmp_path_factory.mktemp('fuzz-db') / 'berkas.db'}"
        return
    with postgres_url() as cluster:
        yield fresh_database(cluster, "berkas_fuzz")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Fuzzed]:
    root = tmp_path_factory.mktemp("fuzz")
    server = Server(
        data_dir=root / "data",
        env={
            "BERKAS_DATABASE_URL": database_url,
            # A generated file_url names no reachable host; fail its fetch fast.
            "BERKAS_FETCH_CONNECT_TIMEOUT": "1",
            "BERKAS_FETCH_READ_TIMEOUT": "1",
            "BERKAS_FETCH_TOTAL_TIMEOUT": "2",
        },
    )
    server.start()
    try:
        partner, other = server.new_partner(), server.new_partner()
        ledger = Ledger()
        own: list[str] = []
        theirs: list[str] = []
        keys: list[str] = []
        for who, ids in ((partner, own), (other, theirs)):
            answer = who.upload(samples.jpeg(seed=len(ids)))
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["id"])
            keys.append(unquote(urlsplit(answer.json()["link"]).path.removeprefix("/links/")))
        ledger.uploaded.update(own + theirs)
        yield Fuzzed(server, database_url, partner, other, ledger, own, theirs, keys)
        # Whatever ran: a 5xx the server answered, seen by the fuzzer or not, fails here.
        assert server_errors(FAMILY, server.metrics_url) == 0
    finally:
        server.stop()


def _load(fuzzed: Fuzzed, *, credentials: bool, mode: str) -> schemathesis.BaseSchema:
    # With credentials of our own, none are generated (nor left out as negative data):
    # the partner's requests are always authenticated, the others never are.
    config = schemathesis.Config.from_dict(
        {"generation": {"with-security-parameters": not credentials}}
    )
    schema = schemathesis.openapi.from_url(f"{fuzzed.server.url}/openapi.json", config=config)

    @schema.hook("flatmap_body")
    def some_real_documents(context: schemathesis.HookContext, body: Any) -> Any:
        # Random bytes are never a JPEG, so half the generated uploads carry a real one:
        # the accepted path is fuzzed too (the other fields as generated).
        # Only into valid bodies: a real file in a negative one could make it valid.
        if mode != "positive" or context.operation is None or context.operation.path != UPLOAD:
            return st.just(body)
        if not isinstance(body, dict):
            return st.just(body)
        real = st.sampled_from([samples.jpeg(seed=1), samples.png(seed=2), samples.pdf()])
        return st.one_of(st.just(body), real.map(lambda data: {**body, "file": data}))

    @schema.hook("filter_body")
    def text_fields_as_text(context: schemathesis.HookContext, body: Any) -> bool:
        # Multipart fields are text: a field drawn as null, a number or a list goes out as
        # "null", "5" or repeated/absent parts, often valid data (e.g. any code, which only
        # DOCUMENT reads), not the invalid value intended. Negative uploads keep the
        # mutations that survive the wire: values outside the enum, a missing category,
        # a file_url that is no URL.
        if mode == "positive" or context.operation is None or context.operation.path != UPLOAD:
            return True
        if not isinstance(body, dict):
            return True
        return all(isinstance(body[name], str) for name in TEXT_FIELDS if name in body)

    @schema.hook("flatmap_query")
    def some_real_merchants(context: schemathesis.HookContext, query: Any) -> Any:
        # The catalogue's values are data, not an enum in the schema: mix in real ones.
        if mode != "positive" or context.operation is None or context.operation.path != UPLOAD:
            return st.just(query)
        if not isinstance(query, dict):
            return st.just(query)
        merchant = st.sampled_from(MERCHANTS)
        return st.one_of(st.just(query), merchant.map(lambda known: {**query, **known}))

    @schema.hook("flatmap_path_parameters")
    def some_real_files(context: schemathesis.HookContext, parameters: Any) -> Any:
        # Ids and object keys that exist (the partner's and the other's), so the
        # ownership and link checks meet real files, not only 404s; and text the
        # generator rarely draws in a path (NUL, other controls, a huge id).
        for name, known in (("file_id", fuzzed.own_ids + fuzzed.other_ids), ("key", fuzzed.keys)):
            if isinstance(parameters, dict) and name in parameters:
                values = [*known, *(value.replace("ID", known[0]) for value in ODD_IDS)]
                real = st.sampled_from([{**parameters, name: value} for value in values])
                return st.one_of(st.just(parameters), real)
        return st.just(parameters)

    return schema


@pytest.fixture(scope="module")
def as_partner(fuzzed: Fuzzed) -> dict[str, schemathesis.BaseSchema]:
    """The document with the partner's credentials on every request, per mode."""
    schemas = {mode: _load(fuzzed, credentials=True, mode=mode) for mode in MODES}
    for schema in schemas.values():
        schema.auth.set_from_requests(PartnerAuth(fuzzed.partner))
    return schemas


@pytest.fixture(scope="module")
def as_anyone(fuzzed: Fuzzed) -> dict[str, schemathesis.BaseSchema]:
    """The document with generated credentials (or none), per mode."""
    return {mode: _load(fuzzed, credentials=False, mode=mode) for mode in MODES}


def error_envelope(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every 4xx/5xx is ``{"error": {"code", "message", "type"}}`` and nothing else."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} body is not JSON: {response.content[:200]!r}"
        ) from None
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert set(error) == {"code", "message", "type"}, body
    assert all(isinstance(error[k], str) and error[k] for k in error), body
    assert error["type"] in ERROR_TYPES, body
    return None


CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    error_envelope,
]

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # `make test` replays the same examples every run; `make fuzz` draws new ones.
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=list(HealthCheck),
)


def _run(case: Case[Any], fuzzed: Fuzzed, checks: list[CheckFunction]) -> None:
    response = case.call(timeout=30)
    tally(FAMILY, response.status_code)
    if case.method == "POST" and case.path == UPLOAD and 200 <= response.status_code < 300:
        answer = response.json()
        # A dry run (Berkas-Dry-Run: true) has no id: it stored nothing, and the ledger's
        # check against the database's rows holds it to that.
        if not answer.get("dry_run"):
            fuzzed.ledger.uploaded.add(answer["id"])
    case.validate_response(response, checks=checks)


def _fuzz(
    schema: schemathesis.BaseSchema,
    label: str,
    mode: str,
    fuzzed: Fuzzed,
    checks: list[CheckFunction] = CHECKS,
) -> None:
    operation = schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in /openapi.json any more"

    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
    def fuzz(case: Case[Any]) -> None:
        _run(case, fuzzed, checks)

    fuzz()


# Every operation the document lists; a test below fails when one is added or removed,
# so a new endpoint is fuzzed from the day it is documented.
OPERATIONS = [
    f"POST {API_PREFIX}/token",
    f"GET {API_PREFIX}/file",
    UPLOAD_LABEL,
    f"GET {API_PREFIX}/file/{{file_id}}",
    f"DELETE {API_PREFIX}/file/{{file_id}}",
    f"POST {API_PREFIX}/file/{{file_id}}/links/revoke",
    f"GET {API_PREFIX}/file/{{file_id}}/events",
    f"GET {API_PREFIX}/files",
    LINK_LABEL,
    "GET /.well-known/jwks.json",
    "GET /healthz",
    "GET /readyz",
]
# Negative data needs an input the schema constrains: not the parameterless GETs, nor
# GET /file/{file_id} once its credentials are ours (any string is a valid id).
TAKES_INPUT = [
    f"POST {API_PREFIX}/token",
    f"GET {API_PREFIX}/file",
    f"GET {API_PREFIX}/files",
    UPLOAD_LABEL,
    LINK_LABEL,
]
AS_PARTNER = [(label, "positive") for label in OPERATIONS] + [
    (label, "negative") for label in TAKES_INPUT
]
WITHOUT_CREDENTIALS = [
    (label, mode) for label in OPERATIONS if API_PREFIX in label for mode in MODES
]


def test_the_fuzzed_operations_are_the_documented_ones(
    as_anyone: dict[str, schemathesis.BaseSchema],
) -> None:
    documented = set()
    for result in as_anyone["positive"].get_all_operations():
        assert isinstance(result, Ok), result
        documented.add(f"{result.ok().method.upper()} {result.ok().path}")
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), AS_PARTNER)
def test_as_a_partner(
    as_partner: dict[str, schemathesis.BaseSchema], fuzzed: Fuzzed, label: str, mode: str
) -> None:
    # Invalid uploads and links must be refused with a 4xx. (Not on the signed endpoints:
    # our signature replaces a negated DOKU header, which makes the request valid again.)
    refusing = mode == "negative" and label in {UPLOAD_LABEL, LINK_LABEL}
    _fuzz(
        as_partner[mode],
        label,
        mode,
        fuzzed,
        [*CHECKS, negative_data_rejection] if refusing else CHECKS,
    )


@pytest.mark.parametrize(("label", "mode"), WITHOUT_CREDENTIALS)
def test_without_credentials(
    as_anyone: dict[str, schemathesis.BaseSchema], fuzzed: Fuzzed, label: str, mode: str
) -> None:
    # Generated (so wrong) signatures and bearer tokens: refused, never a 5xx.
    _fuzz(as_anyone[mode], label, mode, fuzzed)


def test_nothing_stored_from_a_rejected_request(fuzzed: Fuzzed) -> None:
    data = fuzzed.server.data_dir
    # The fuzzer's two partners' rows (a configured PostgreSQL may hold other tests').
    engine = sqlalchemy.create_engine(
        fuzzed.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    )
    clients = [fuzzed.partner.client_id, fuzzed.other.client_id]
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sqlalchemy.text("SELECT id, key FROM files WHERE client_id IN :clients").bindparams(
                    sqlalchemy.bindparam("clients", expanding=True)
                ),
                {"clients": clients},
            )
            rows = {row.id: row.key for row in found}
    finally:
        engine.dispose()
    assert set(rows) == fuzzed.ledger.uploaded
    blobs = data / "blobs"
    on_disk = {
        str(p.relative_to(blobs))
        for p in blobs.rglob("*")
        if p.is_file() and ".tmp" not in p.relative_to(blobs).parts
    }
    assert on_disk == set(rows.values())
    assert list((data / "spool").glob("*")) == []
    assert "Traceback" not in fuzzed.server.output()
