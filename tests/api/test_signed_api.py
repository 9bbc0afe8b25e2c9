"""The HMAC-signed endpoints (POST /token, GET /file) through the real app in-process.

Covers DOKU's Request-Id rule as a partner sees it: every answer, error or not, comes back
again (409) for the same request, and a server failure is forgotten so a retry runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import jwt
import pytest

from berkas.core import signing
from tests.support.errors import assert_error
from tests.support.inprocess import InProcess
from tests.support.partner import FILE_PATH, TOKEN_PATH, Partner

PERSONAL = (
    "businessType=PERSONAL&businessLegalEntity=PERSEORANGAN&brandBusinessLine=RETAIL"
    "&businessContactNationality=ID"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    srv = InProcess(tmp_path_factory.mktemp("signed") / "data")
    yield srv
    srv.close()


@pytest.fixture
def partner(server: InProcess) -> Partner:
    return server.partner()


def test_a_token_carries_dokus_claims_and_a_published_kid(
    server: InProcess, partner: Partner
) -> None:
    response = partner.token_request({"grant_type": "client_credentials", "valid_time": "360"})

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"token"}
    token = response.json()["token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "RS256"
    assert claims["sub"] == "payload"
    assert claims["user"] == {"businessServiceClientId": partner.client_id}
    assert claims["exp"] - claims["iat"] == 360 * 60
    jwks = server.http.get("/.well-known/jwks.json").json()
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        (b"{not json", "invalid_json", "JSON"),
        (b"[1, 2]", "invalid_json", "JSON object"),
        (b"\xff\xfe", "invalid_json", "JSON"),
        # Python refuses integers over 4300 digits (CVE-2020-10735) with a ValueError.
        (
            b'{"grant_type":"client_credentials","valid_time":' + b"9" * 5000 + b"}",
            "invalid_json",
            "JSON",
        ),
        (b"[" * 30000 + b"]" * 30000, "invalid_json", "JSON"),
        (json.dumps({"grant_type": "password"}).encode(), "grant_type_invalid", "grant_type"),
        (json.dumps({"valid_time": "60"}).encode(), "grant_type_invalid", "grant_type"),
        (
            json.dumps({"grant_type": "client_credentials", "valid_time": "abc"}).encode(),
            "invalid_valid_time",
            "valid_time",
        ),
        (
            json.dumps({"grant_type": "client_credentials", "valid_time": "0"}).encode(),
            "invalid_valid_time",
            "valid_time",
        ),
    ],
)
def test_a_bad_token_request_is_answered_once_and_then_replayed(
    partner: Partner, body: bytes, code: str, named: str
) -> None:
    first = partner.token_request(body, request_id="bad-1")
    error = assert_error(first, 400, code)
    assert named in error["message"]

    again = partner.token_request(body, request_id="bad-1")

    assert again.status_code == 409
    assert again.content == first.content


def test_the_same_token_request_gets_the_first_token_back(partner: Partner) -> None:
    payload = {"grant_type": "client_credentials", "valid_time": "30"}
    first = partner.token_request(payload, request_id="tok-1")
    assert first.status_code == 200

    again = partner.token_request(payload, request_id="tok-1")

    assert again.status_code == 409
    assert again.json() == first.json()


def test_a_reused_request_id_for_another_body_is_a_conflict(partner: Partner) -> None:
    partner.token_request({"grant_type": "client_credentials"}, request_id="tok-2")

    other = partner.token_request(
        {"grant_type": "client_credentials", "valid_time": "10"}, request_id="tok-2"
    )

    error = assert_error(other, 409, "request_id_reused")
    assert error["type"] == "conflict_error"
    assert "tok-2" in error["message"]


def test_a_server_failure_is_not_replayed(
    server: InProcess,
    partner: Partner,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    payload = {"grant_type": "client_credentials"}
    with monkeypatch.context() as patched:

        def explode(*args: object, **kwargs: object) -> None:
            raise RuntimeError("key store exploded")

        patched.setattr(server.services.tokens, "issue_to", explode)
        failed = partner.token_request(payload, request_id="tok-3")

    error = assert_error(failed, 500, "internal_error")  # with the Request-Id header's id
    assert error["type"] == "api_error"
    assert "exploded" not in failed.text
    # Logged once, with the traceback and the id the caller was given.
    crashes = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(crashes) == 1
    assert crashes[0].exc_info is not None
    assert getattr(crashes[0], "request_id", None) == failed.headers["request-id"] == "tok-3"

    retry = partner.token_request(payload, request_id="tok-3")
    assert retry.status_code == 200, retry.text
    assert "token" in retry.json()


def test_request_ids_belong_to_one_client(server: InProcess, partner: Partner) -> None:
    other = server.partner()
    payload = {"grant_type": "client_credentials"}

    assert partner.token_request(payload, request_id="shared-id").status_code == 200
    assert other.token_request(payload, request_id="shared-id").status_code == 200


@pytest.mark.parametrize("header", ["Client-Id", "Request-Id", "Request-Timestamp", "Signature"])
def test_each_missing_signed_header_is_named(partner: Partner, header: str) -> None:
    body = b'{"grant_type": "client_credentials"}'
    headers = signing.signed_headers(
        client_id=partner.client_id, secret_key=partner.secret_key, target=TOKEN_PATH, body=body
    )
    del headers[header]

    response = partner.http.request("POST", TOKEN_PATH, content=body, headers=headers)

    error = assert_error(response, 401, "header_missing")
    assert header in error["message"]


def test_a_request_id_over_128_characters_is_a_bad_request(partner: Partner) -> None:
    response = partner.token_request({"grant_type": "client_credentials"}, request_id="r" * 129)

    error = assert_error(response, 400, "invalid_request_id")
    assert "128" in error["message"]


def test_a_wrong_secret_is_refused(server: InProcess, partner: Partner) -> None:
    forger = Partner(server.http, partner.client_id, "SK-guessed")

    response = forger.token_request({"grant_type": "client_credentials"})

    assert_error(response, 401, "signature_invalid")


def test_a_json_body_over_64_kb_is_refused(partner: Partner) -> None:
    body = json.dumps({"grant_type": "client_credentials", "pad": "x" * 70_000}).encode()

    assert_error(partner.token_request(body), 413, "body_too_large")


def test_requirements_match_dokus_published_example(partner: Partner) -> None:
    response = partner.signed("GET", FILE_PATH, query=PERSONAL)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["business"]["brand"]["photo_proof"]["extensions"] == ["PNG", "JPG", "JPEG"]
    ktp = body["business"]["contact"]["documents"][0]
    assert ktp["code"] == "KTP"
    assert ktp["form"][0]["code"] == "NO_KTP"


def test_requirements_signed_over_path_and_query_are_accepted(partner: Partner) -> None:
    headers = signing.signed_headers(
        client_id=partner.client_id,
        secret_key=partner.secret_key,
        target=f"{FILE_PATH}?{PERSONAL}",
        body=None,
    )

    response = partner.http.request("GET", f"{FILE_PATH}?{PERSONAL}", headers=headers)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "parameter",
    ["businessType", "businessLegalEntity", "brandBusinessLine", "businessContactNationality"],
)
def test_a_missing_requirement_parameter_is_named(partner: Partner, parameter: str) -> None:
    query = "&".join(p for p in PERSONAL.split("&") if not p.startswith(f"{parameter}="))

    response = partner.signed("GET", FILE_PATH, query=query)

    error = assert_error(response, 400, "parameter_missing")
    assert f"parameter {parameter} is required" in error["message"]


def test_an_unknown_business_type_lists_the_allowed_values(partner: Partner) -> None:
    query = PERSONAL.replace("PERSONAL", "GOVERNMENT")

    response = partner.signed("GET", FILE_PATH, query=query, request_id="req-unknown")

    error = assert_error(response, 400, "invalid_parameter")
    assert "businessType" in error["message"]
    assert "PERSONAL" in error["message"]
    assert "CORPORATE" in error["message"]
    again = partner.signed("GET", FILE_PATH, query=query, request_id="req-unknown")
    assert again.status_code == 409
    assert again.content == response.content
