"""DOKU request signing: DESIGN 2.1's test vectors and the rules around them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from berkas.core import signing
from berkas.core.errors import AuthenticationFailed

SECRET = "SK-selftest-0000"
CLIENT_ID = "BRN-0001-10791114622547"
REQUEST_ID = "fdb69f47-96da-499d-acec-7cdc318ab2fe"
TIMESTAMP = "2020-08-11T08:45:42Z"
TOKEN_TARGET = "/adv-core-api/partner/v1.0/token"
FILE_TARGET = "/adv-core-api/partner/v1.0/file"
TOKEN_BODY = b'{"grant_type":"client_credentials","valid_time":"360"}'
TOKEN_DIGEST = "23kYsU7yk6vZ/exEcBe1UAFmjn17wuk165Oc+E3Cb8Y="
TOKEN_SIGNATURE = "HMACSHA256=UZuP9wiwBTeB5920hcJ/sK3lW5rNdd/9loiup3knEzY="
FILE_SIGNATURE = "HMACSHA256=re/I4rcBPI8UfTyKsVZQvb/fmd6caLTUS4F7N/DpGKM="


def _sign(**overrides: object) -> str:
    fields: dict[str, object] = {
        "client_id": CLIENT_ID,
        "request_id": REQUEST_ID,
        "timestamp": TIMESTAMP,
        "target": TOKEN_TARGET,
        "digest": TOKEN_DIGEST,
    }
    secret = str(overrides.pop("secret_key", SECRET))
    fields.update(overrides)
    return signing.sign(secret, **fields)  # type: ignore[arg-type]


def test_digest_of_the_design_token_body() -> None:
    assert signing.digest(TOKEN_BODY) == TOKEN_DIGEST


def test_empty_body_digest() -> None:
    assert signing.digest(b"") == signing.EMPTY_BODY_DIGEST
    assert signing.EMPTY_BODY_DIGEST == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_design_vector_post_token() -> None:
    assert _sign() == TOKEN_SIGNATURE


def test_design_vector_get_file_has_no_digest_line() -> None:
    assert _sign(target=FILE_TARGET, digest=None) == FILE_SIGNATURE


def test_string_to_sign_layout() -> None:
    text = signing.string_to_sign(
        client_id=CLIENT_ID,
        request_id=REQUEST_ID,
        timestamp=TIMESTAMP,
        target=TOKEN_TARGET,
        digest=TOKEN_DIGEST,
    )
    assert text == (
        f"Client-Id:{CLIENT_ID}\n"
        f"Request-Id:{REQUEST_ID}\n"
        f"Request-Timestamp:{TIMESTAMP}\n"
        f"Request-Target:{TOKEN_TARGET}\n"
        f"Digest:{TOKEN_DIGEST}"
    )
    without = signing.string_to_sign(
        client_id=CLIENT_ID,
        request_id=REQUEST_ID,
        timestamp=TIMESTAMP,
        target=FILE_TARGET,
        digest=None,
    )
    assert "Digest" not in without
    assert not without.endswith("\n")


@pytest.mark.parametrize(
    "change",
    [
        {"digest": signing.digest(TOKEN_BODY.replace(b"360", b"361"))},
        {"target": TOKEN_TARGET + "x"},
        {"timestamp": "2020-08-11T08:45:43Z"},
        {"secret_key": SECRET[:-1] + "1"},
        {"client_id": CLIENT_ID[:-1] + "8"},
        {"request_id": REQUEST_ID[:-1] + "f"},
    ],
    ids=["body", "target", "timestamp", "secret", "client_id", "request_id"],
)
def test_one_changed_byte_changes_the_signature(change: dict[str, object]) -> None:
    assert _sign(**change) != TOKEN_SIGNATURE


def _matches(signature: str, targets: list[str], digest: str | None = TOKEN_DIGEST) -> bool:
    return signing.signature_matches(
        SECRET,
        signature,
        client_id=CLIENT_ID,
        request_id=REQUEST_ID,
        timestamp=TIMESTAMP,
        targets=targets,
        digest=digest,
    )


def test_signature_matches_the_design_vector() -> None:
    assert _matches(TOKEN_SIGNATURE, [TOKEN_TARGET])
    assert not _matches(TOKEN_SIGNATURE, [FILE_TARGET])
    assert not _matches(TOKEN_SIGNATURE, [TOKEN_TARGET], digest=None)


def test_signature_over_path_and_query_is_accepted() -> None:
    query_target = FILE_TARGET + "?businessType=PERSONAL&businessLegalEntity=PERSEORANGAN"
    signature = _sign(target=query_target, digest=None)
    assert _matches(signature, [FILE_TARGET, query_target], digest=None)
    assert _matches(FILE_SIGNATURE, [FILE_TARGET, query_target], digest=None)
    assert not _matches(signature, [FILE_TARGET], digest=None)


@pytest.mark.parametrize(
    "signature",
    ["", "HMACSHA256=", TOKEN_SIGNATURE.lower(), TOKEN_SIGNATURE + "=", "HMACSHA256=ü€\udcff"],
)
def test_wrong_or_odd_signatures_do_not_match(signature: str) -> None:
    assert not _matches(signature, [TOKEN_TARGET])


def test_no_candidate_targets_never_match() -> None:
    assert not _matches(TOKEN_SIGNATURE, [])


def test_line_break_cannot_move_the_digest_into_the_target() -> None:
    # Without the line-break rule, a GET to "<path>\nDigest:<d>" would sign the same
    # string as a POST to <path> with body digest <d>.
    forged_target = f"{TOKEN_TARGET}\nDigest:{TOKEN_DIGEST}"
    assert not _matches(TOKEN_SIGNATURE, [forged_target], digest=None)
    with pytest.raises(ValueError, match="Request-Target"):
        signing.string_to_sign(
            client_id=CLIENT_ID,
            request_id=REQUEST_ID,
            timestamp=TIMESTAMP,
            target=forged_target,
            digest=None,
        )


def test_parse_timestamp_accepts_the_documented_form() -> None:
    assert signing.parse_timestamp(TIMESTAMP) == datetime(2020, 8, 11, 8, 45, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2020-08-11 08:45:42",
        "2020-08-11T08:45:42+07:00",
        "2020-08-11T08:45:42+00:00",
        "2020-08-11T08:45:42",
        "2020-08-11T08:45:42z",
        "2020-08-11T08:45:42.123Z",
        "2020-8-11T08:45:42Z",
        "2020-08-11T08:45Z",
        "2020-13-11T08:45:42Z",
        "2020-02-30T08:45:42Z",
        "2020-08-11T24:00:00Z",
        "٢٠٢٠-08-11T08:45:42Z",
        " 2020-08-11T08:45:42Z",
        "2020-08-11T08:45:42Z\n",
        "",
        "1597135542",
    ],
)
def test_parse_timestamp_rejects_other_spellings(value: str) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        signing.parse_timestamp(value)
    assert caught.value.code == "timestamp_invalid"
    assert "Request-Timestamp" in caught.value.message
    assert "YYYY-MM-DDTHH:MM:SSZ" in caught.value.message


def test_format_timestamp_converts_to_utc_and_drops_fractions() -> None:
    wib = timezone(timedelta(hours=7))
    moment = datetime(2020, 9, 22, 8, 51, 0, 999_000, tzinfo=wib)
    # DOKU's own example: 08:51 WIB is 01:51Z.
    assert signing.format_timestamp(moment) == "2020-09-22T01:51:00Z"


def test_format_timestamp_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        signing.format_timestamp(datetime(2020, 8, 11, 8, 45, 42))


def test_timestamp_within_window_both_sides() -> None:
    now = datetime(2020, 8, 11, 8, 45, 42, tzinfo=UTC)
    window = timedelta(minutes=5)
    assert signing.timestamp_within(now + window, now, window)
    assert signing.timestamp_within(now - window, now, window)
    assert not signing.timestamp_within(now + window + timedelta(seconds=1), now, window)
    assert not signing.timestamp_within(now - window - timedelta(seconds=1), now, window)


def test_signed_headers_reproduce_the_design_vector() -> None:
    headers = signing.signed_headers(
        client_id=CLIENT_ID,
        secret_key=SECRET,
        target=TOKEN_TARGET,
        body=TOKEN_BODY,
        request_id=REQUEST_ID,
        timestamp=signing.parse_timestamp(TIMESTAMP),
    )
    assert headers == {
        "Client-Id": CLIENT_ID,
        "Request-Id": REQUEST_ID,
        "Request-Timestamp": TIMESTAMP,
        "Signature": TOKEN_SIGNATURE,
    }


def test_signed_headers_defaults_verify_on_the_server_side() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    headers = signing.signed_headers(
        client_id=CLIENT_ID, secret_key=SECRET, target=FILE_TARGET, body=None
    )
    after = datetime.now(UTC)
    stamped = signing.parse_timestamp(headers["Request-Timestamp"])
    assert before <= stamped <= after
    assert len(headers["Request-Id"]) == 36
    assert signing.signature_matches(
        SECRET,
        headers["Signature"],
        client_id=CLIENT_ID,
        request_id=headers["Request-Id"],
        timestamp=headers["Request-Timestamp"],
        targets=[FILE_TARGET],
        digest=None,
    )
    again = signing.signed_headers(
        client_id=CLIENT_ID, secret_key=SECRET, target=FILE_TARGET, body=None
    )
    assert again["Request-Id"] != headers["Request-Id"]
