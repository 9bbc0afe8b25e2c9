"""Every catalogue member through the one error mapping: status, type and envelope."""

from __future__ import annotations

import json

import pytest

from berkas.api.errors import error_response
from berkas.core.codes import Code, ErrorType
from berkas.core.errors import (
    AuthenticationFailed,
    BerkasError,
    FetchRefused,
    InvalidRequest,
    Replayed,
)

ENVELOPE_TYPES = {kind.value for kind in ErrorType}


def rendered(error: BerkasError) -> tuple[int, dict[str, object]]:
    response = error_response(error)
    assert response.media_type == "application/json"
    body = json.loads(bytes(response.body))
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "type"}
    return response.status_code, body["error"]


@pytest.mark.parametrize("code", list(Code), ids=lambda code: code.value)
def test_a_member_answers_with_its_status_type_and_default_message(code: Code) -> None:
    status, error = rendered(BerkasError(code=code))

    assert status == code.status
    assert error == {"code": code.value, "message": code.message, "type": code.error_type}
    assert error["type"] in ENVELOPE_TYPES
    # A sentence, not the code again: what a partner reads when nothing more is said.
    assert isinstance(error["message"], str)
    assert error["message"].endswith(".")
    assert " " in error["message"]


@pytest.mark.parametrize(
    "code", [code for code in Code if code.fetch_refusal], ids=lambda code: code.value
)
def test_a_fetch_refusal_answers_422_keeping_its_code_and_type(code: Code) -> None:
    status, error = rendered(FetchRefused("file_url: the fetched body is refused.", code=code))

    assert status == 422
    assert error == {
        "code": code.value,
        "message": "file_url: the fetched body is refused.",
        "type": "invalid_request_error",
    }


def test_the_raise_sites_message_goes_on_the_wire_not_the_default() -> None:
    status, error = rendered(InvalidRequest("category is required.", code=Code.CATEGORY_MISSING))
    assert (status, error["message"]) == (400, "category is required.")


def test_a_replay_answers_409_with_the_first_body_not_an_envelope() -> None:
    response = error_response(Replayed(b'{"token": "t"}'))
    assert (response.status_code, bytes(response.body)) == (409, b'{"token": "t"}')


@pytest.mark.parametrize(
    ("code", "challenge"),
    [
        (Code.TOKEN_MISSING, "Bearer"),
        (Code.TOKEN_EXPIRED, 'Bearer error="invalid_token"'),
        (Code.SIGNATURE_INVALID, None),
    ],
)
def test_only_a_refused_bearer_token_gets_a_challenge(code: Code, challenge: str | None) -> None:
    response = error_response(AuthenticationFailed(code=code))
    assert response.status_code == 401
    assert response.headers.get("www-authenticate") == challenge
