"""Signed partner requests (DESIGN 2.1): who may call, how fresh, and the Request-Id rule."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import timedelta

import pytest

from berkas.adapters.db.memory import MemoryDatabase
from berkas.core import signing
from berkas.core.errors import AuthenticationFailed, Conflict, InvalidRequest, Replayed
from berkas.core.models import Client, ReplayRecord
from berkas.services.signed import RequestVerifier, SignedRequest
from tests.support.fakes import FakeClock

TOKEN_PATH = "/adv-core-api/partner/v1.0/token"
FILE_PATH = "/adv-core-api/partner/v1.0/file"
BODY = b'{"grant_type":"client_credentials","valid_time":"360"}'
WINDOW = timedelta(minutes=5)
SECRET_ONE = "SK-one-secret"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(clock: FakeClock) -> MemoryDatabase:
    database = MemoryDatabase()
    for client_id, secret in (("BRN-0001-1", "SK-one-secret"), ("BRN-0002-2", "SK-two-secret")):
        database.clients.add(Client(client_id, secret, True, clock.now()))
    return database


@pytest.fixture
def verifier(db: MemoryDatabase, clock: FakeClock) -> RequestVerifier:
    return RequestVerifier(db.clients, db.replays, clock, window=WINDOW)


def signed(
    clock: FakeClock,
    *,
    client_id: str = "BRN-0001-1",
    secret: str = SECRET_ONE,
    request_id: str = "req-1",
    method: str = "POST",
    path: str = TOKEN_PATH,
    query: str = "",
    body: bytes | None = BODY,
    target: str | None = None,
    timestamp: str | None = None,
) -> SignedRequest:
    stamp = timestamp or signing.format_timestamp(clock.now())
    signature = signing.sign(
        secret,
        client_id=client_id,
        request_id=request_id,
        timestamp=stamp,
        target=target or path,
        digest=None if body is None else signing.digest(body),
    )
    return SignedRequest(
        client_id=client_id,
        request_id=request_id,
        timestamp=stamp,
        signature=signature,
        method=method,
        path=path,
        query=query,
        body=body,
    )


def test_a_correctly_signed_request_names_its_client(
    verifier: RequestVerifier, clock: FakeClock
) -> None:
    assert verifier.authenticate(signed(clock)).client_id == "BRN-0001-1"


@pytest.mark.parametrize(
    ("field", "header"),
    [
        ("client_id", "Client-Id"),
        ("request_id", "Request-Id"),
        ("timestamp", "Request-Timestamp"),
        ("signature", "Signature"),
    ],
)
@pytest.mark.parametrize("absent", [None, "", "   "])
def test_each_missing_header_is_named(
    verifier: RequestVerifier, clock: FakeClock, field: str, header: str, absent: str | None
) -> None:
    request = dataclasses.replace(signed(clock), **{field: absent})  # type: ignore[arg-type]

    with pytest.raises(AuthenticationFailed) as caught:
        verifier.authenticate(request)

    assert caught.value.code == "header_missing"
    assert header in caught.value.message


def test_request_id_over_128_characters_is_a_bad_request(
    verifier: RequestVerifier, clock: FakeClock
) -> None:
    verifier.authenticate(signed(clock, request_id="r" * 128))

    with pytest.raises(InvalidRequest) as caught:
        verifier.authenticate(signed(clock, request_id="r" * 129))

    assert caught.value.code == "invalid_request_id"
    assert "Request-Id" in caught.value.message
    assert "128" in caught.value.message


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_a_timestamp_outside_the_window_on_either_side_is_refused(
    verifier: RequestVerifier, clock: FakeClock, skew: timedelta
) -> None:
    stamp = signing.format_timestamp(clock.now() + skew)

    with pytest.raises(AuthenticationFailed) as caught:
        verifier.authenticate(signed(clock, timestamp=stamp))

    assert caught.value.code == "timestamp_out_of_window"
    assert "Request-Timestamp" in caught.value.message


@pytest.mark.parametrize("skew", [timedelta(minutes=-5), timedelta(minutes=5)])
def test_a_timestamp_at_the_window_edge_is_accepted(
    verifier: RequestVerifier, clock: FakeClock, skew: timedelta
) -> None:
    stamp = signing.format_timestamp(clock.now() + skew)

    assert verifier.authenticate(signed(clock, timestamp=stamp)).client_id == "BRN-0001-1"


@pytest.mark.parametrize(
    "stamp", ["2020-08-11 08:45:42", "2020-08-11T08:45:42+07:00", "2020-13-11T08:45:42Z", "now"]
)
def test_a_malformed_timestamp_has_its_own_code(
    verifier: RequestVerifier, clock: FakeClock, stamp: str
) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.authenticate(signed(clock, timestamp=stamp))

    assert caught.value.code == "timestamp_invalid"
    assert "YYYY-MM-DDTHH:MM:SSZ" in caught.value.message


def test_an_unknown_client_looks_exactly_like_a_bad_signature(
    verifier: RequestVerifier, clock: FakeClock
) -> None:
    with pytest.raises(AuthenticationFailed) as unknown:
        verifier.authenticate(signed(clock, client_id="BRN-9999-9"))
    with pytest.raises(AuthenticationFailed) as forged:
        verifier.authenticate(signed(clock, secret="SK-not-the-secret"))

    assert unknown.value.code == forged.value.code == "signature_invalid"
    assert unknown.value.message == forged.value.message


@pytest.mark.parametrize(
    "tamper",
    [
        {"secret": "SK-wrong-secret"},
        {"target": "/adv-core-api/partner/v1.0/file"},
        {"secret": "SK-two-secret"},  # another client's secret
    ],
)
def test_a_bad_signature_is_refused(
    verifier: RequestVerifier, clock: FakeClock, tamper: dict[str, str]
) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.authenticate(signed(clock, **tamper))  # type: ignore[arg-type]

    assert caught.value.code == "signature_invalid"


def test_a_body_changed_after_signing_is_refused(
    verifier: RequestVerifier, clock: FakeClock
) -> None:
    request = dataclasses.replace(signed(clock), body=BODY.replace(b"360", b"999"))

    with pytest.raises(AuthenticationFailed) as caught:
        verifier.authenticate(request)

    assert caught.value.code == "signature_invalid"


def test_a_disabled_client_is_told_only_after_its_signature_checks(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    db.clients.set_enabled("BRN-0001-1", False)

    # A forger learns nothing about the client's state: a bad signature is just that.
    with pytest.raises(AuthenticationFailed) as forged:
        verifier.authenticate(signed(clock, secret="SK-guess"))
    assert forged.value.code == "signature_invalid"

    with pytest.raises(AuthenticationFailed) as genuine:
        verifier.authenticate(signed(clock))
    assert genuine.value.code == "client_disabled"


def test_a_signature_over_path_and_query_is_accepted(
    verifier: RequestVerifier, clock: FakeClock
) -> None:
    query = "businessType=PERSONAL&businessContactNationality=ID"
    with_query = signed(
        clock, method="GET", path=FILE_PATH, query=query, body=None, target=f"{FILE_PATH}?{query}"
    )
    path_only = signed(clock, method="GET", path=FILE_PATH, query=query, body=None)

    assert verifier.authenticate(with_query).client_id == "BRN-0001-1"
    assert verifier.authenticate(path_only).client_id == "BRN-0001-1"


def test_a_signature_over_another_query_is_refused(
    verifier: RequestVerifier, clock: FakeClock
) -> None:
    request = signed(
        clock,
        method="GET",
        path=FILE_PATH,
        query="businessType=CORPORATE",
        body=None,
        target=f"{FILE_PATH}?businessType=PERSONAL",
    )

    with pytest.raises(AuthenticationFailed) as caught:
        verifier.authenticate(request)

    assert caught.value.code == "signature_invalid"


def _run(verifier: RequestVerifier, request: SignedRequest, status: int, body: bytes) -> None:
    verifier.record(verifier.authenticate(request), request, status, body)


def _heard(verifier: RequestVerifier, request: SignedRequest) -> bytes:
    """What ``request`` hears when its Request-Id was answered first."""
    with pytest.raises(Replayed) as caught:
        _run(verifier, request, 200, b'{"token": "not this one"}')
    return caught.value.body


def _left_running(db: MemoryDatabase, request: SignedRequest, clock: FakeClock) -> None:
    """A reservation with no answer yet: a request still running on another node, or
    one whose node died (as an older berkas, which reserved first, could leave)."""
    assert request.client_id is not None
    assert request.request_id is not None
    db.replays.begin(
        ReplayRecord(
            client_id=request.client_id,
            request_id=request.request_id,
            fingerprint=request.fingerprint(),
            status=None,
            body=None,
            created_at=clock.now(),
        )
    )


def test_the_same_request_again_hears_the_first_answer(
    verifier: RequestVerifier, clock: FakeClock
) -> None:
    _run(verifier, signed(clock), 200, b'{"token": "first"}')
    assert _heard(verifier, signed(clock)) == b'{"token": "first"}'


def test_an_error_answer_is_replayed_too(verifier: RequestVerifier, clock: FakeClock) -> None:
    error = b'{"error": {"code": "grant_type_invalid"}}'
    _run(verifier, signed(clock), 400, error)
    assert _heard(verifier, signed(clock)) == error


@pytest.mark.parametrize(
    "other",
    [
        {"body": b'{"grant_type":"client_credentials","valid_time":"60"}'},
        {"method": "GET", "path": FILE_PATH, "body": None},
        {"method": "GET", "path": FILE_PATH, "body": None, "query": "businessType=PERSONAL"},
    ],
)
def test_the_same_request_id_for_a_different_request_is_a_conflict(
    verifier: RequestVerifier, clock: FakeClock, other: dict[str, object]
) -> None:
    _run(verifier, signed(clock), 200, b'{"token": "first"}')

    different = signed(clock, **other)  # type: ignore[arg-type]
    with pytest.raises(Conflict) as caught:
        _run(verifier, different, 200, b"{}")

    assert not isinstance(caught.value, Replayed)
    assert caught.value.code == "request_id_reused"
    assert "req-1" in caught.value.message


def test_a_request_still_running_elsewhere_is_reported_in_progress(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    _left_running(db, signed(clock), clock)

    with pytest.raises(Conflict) as caught:
        _run(verifier, signed(clock), 200, b"{}")

    assert caught.value.code == "request_in_progress"


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_failure_is_not_remembered_so_a_retry_runs(
    verifier: RequestVerifier, clock: FakeClock, status: int
) -> None:
    _run(verifier, signed(clock), status, b"")
    _run(verifier, signed(clock), 200, b'{"token": "second"}')  # runs again, no raise
    assert _heard(verifier, signed(clock)) == b'{"token": "second"}'


def test_request_ids_are_per_client(verifier: RequestVerifier, clock: FakeClock) -> None:
    _run(verifier, signed(clock), 200, b'{"token": "one"}')

    other = signed(clock, client_id="BRN-0002-2", secret="SK-two-secret")
    _run(verifier, other, 200, b'{"token": "two"}')  # the same Request-Id is new here

    again = signed(clock, client_id="BRN-0002-2", secret="SK-two-secret")
    assert _heard(verifier, again) == b'{"token": "two"}'


def test_a_reservation_left_by_a_crashed_request_is_taken_over_by_its_retry(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    _left_running(db, signed(clock), clock)  # the node died: no answer, no release

    clock.advance(timedelta(minutes=5))
    _run(verifier, signed(clock), 200, b'{"token": "t"}')  # runs instead of "in progress"
    assert _heard(verifier, signed(clock)) == b'{"token": "t"}'


def test_a_stale_reservation_of_another_request_is_still_a_conflict(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    _left_running(db, signed(clock), clock)
    clock.advance(timedelta(minutes=5))
    other = signed(clock, method="GET", path=FILE_PATH, body=None)
    with pytest.raises(Conflict) as caught:
        _run(verifier, other, 200, b"{}")
    assert caught.value.code == "request_id_reused"


# secret rotation (berkas clients rotate-secret)


def rotate(db: MemoryDatabase, clock: FakeClock, new: str, grace: timedelta) -> None:
    until = clock.now() + grace if grace else None
    assert db.clients.rotate_secret("BRN-0001-1", new, clock.now(), until) is not None


def refused_code(verifier: RequestVerifier, request: SignedRequest) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.authenticate(request)
    return caught.value.code


def test_old_and_new_secrets_both_verify_during_the_grace_then_only_the_new_one(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    rotate(db, clock, "SK-one-rotated", timedelta(hours=24))

    assert verifier.authenticate(signed(clock, request_id="new")).client_id == "BRN-0001-1"
    assert verifier.authenticate(signed(clock, secret="SK-one-rotated")).client_id == "BRN-0001-1"
    clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    assert verifier.authenticate(signed(clock, request_id="last-second")).client_id == "BRN-0001-1"

    clock.advance(timedelta(seconds=1))  # the grace has ended
    assert refused_code(verifier, signed(clock, request_id="late")) == "signature_invalid"
    assert verifier.authenticate(signed(clock, secret="SK-one-rotated", request_id="n2"))


def test_a_zero_grace_refuses_the_old_secret_at_once(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    rotate(db, clock, "SK-one-rotated", timedelta(0))

    assert refused_code(verifier, signed(clock)) == "signature_invalid"
    assert verifier.authenticate(signed(clock, secret="SK-one-rotated")).client_id == "BRN-0001-1"


def test_a_second_rotation_within_the_grace_ends_the_first_secret(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    rotate(db, clock, "SK-second", timedelta(hours=24))
    rotate(db, clock, "SK-third", timedelta(hours=24))

    assert refused_code(verifier, signed(clock, request_id="a")) == "signature_invalid"
    assert verifier.authenticate(signed(clock, secret="SK-second", request_id="b"))
    assert verifier.authenticate(signed(clock, secret="SK-third", request_id="c"))


def test_a_previous_secret_is_no_key_to_another_client(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    rotate(db, clock, "SK-one-rotated", timedelta(hours=24))

    request = signed(clock, client_id="BRN-0002-2", secret=SECRET_ONE)
    assert refused_code(verifier, request) == "signature_invalid"


def test_a_disabled_client_in_its_grace_is_still_disabled(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock
) -> None:
    rotate(db, clock, "SK-one-rotated", timedelta(hours=24))
    db.clients.set_enabled("BRN-0001-1", False)

    assert refused_code(verifier, signed(clock)) == "client_disabled"


def test_the_current_secret_costs_one_hmac_and_every_mismatch_two(
    verifier: RequestVerifier, db: MemoryDatabase, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A correct signature pays nothing for rotation; a wrong one costs the same whether
    # or not the client exists or is in a grace, so timing tells a forger neither.
    secrets_tried: list[str] = []
    real = signing.signature_matches

    def counting(secret_key: str, *args: object, **kwargs: object) -> bool:
        secrets_tried.append(secret_key)
        return real(secret_key, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(signing, "signature_matches", counting)
    rotate(db, clock, "SK-one-rotated", timedelta(hours=24))

    def tried(request: SignedRequest) -> int:
        secrets_tried.clear()
        with contextlib.suppress(AuthenticationFailed):
            verifier.authenticate(request)
        return len(secrets_tried)

    assert tried(signed(clock, secret="SK-one-rotated", request_id="1")) == 1
    assert tried(signed(clock, request_id="2")) == 2  # the previous secret, and it matches
    assert tried(signed(clock, secret="SK-forged", request_id="3")) == 2
    assert tried(signed(clock, client_id="BRN-0002-2", secret="SK-forged")) == 2
    assert tried(signed(clock, client_id="BRN-0404-4", secret="SK-forged")) == 2
