"""DOKU signing: line breaks of either kind in any signed field, a host clock that is
not in UTC, and the exact words of the timestamp refusal (issue 19, item 6)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

import pytest

from berkas.core import signing
from berkas.core.errors import AuthenticationFailed

SECRET = "SK-selftest-0000"
FIELDS = {
    "client_id": "BRN-0001-10791114622547",
    "request_id": "fdb69f47-96da-499d-acec-7cdc318ab2fe",
    "timestamp": "2020-08-11T08:45:42Z",
    "target": "/adv-core-api/partner/v1.0/token",
    "digest": "23kYsU7yk6vZ/exEcBe1UAFmjn17wuk165Oc+E3Cb8Y=",
}
HEADER_NAMES = {
    "client_id": "Client-Id",
    "request_id": "Request-Id",
    "timestamp": "Request-Timestamp",
    "target": "Request-Target",
    "digest": "Digest",
}
TOKEN_SIGNATURE = "HMACSHA256=UZuP9wiwBTeB5920hcJ/sK3lW5rNdd/9loiup3knEzY="


@pytest.mark.parametrize("name", list(FIELDS))
@pytest.mark.parametrize("brk", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_a_line_break_in_any_signed_field_is_never_signed(name: str, brk: str) -> None:
    fields = {**FIELDS, name: FIELDS[name][:5] + brk + FIELDS[name][5:]}
    with pytest.raises(ValueError, match=rf"^{HEADER_NAMES[name]} must not contain a line break$"):
        signing.string_to_sign(**fields)
    with pytest.raises(ValueError, match="line break"):
        signing.sign(SECRET, **fields)


@pytest.mark.parametrize("name", list(FIELDS))
@pytest.mark.parametrize("brk", ["\r", "\n", "\r\n"], ids=["CR", "LF", "CRLF"])
def test_a_line_break_in_any_signed_field_never_verifies(name: str, brk: str) -> None:
    # Signed the naive way (joining whatever the field holds), it still must not match.
    fields = {**FIELDS, name: FIELDS[name][:5] + brk + FIELDS[name][5:]}
    naive = "\n".join(f"{HEADER_NAMES[k]}:{v}" for k, v in fields.items())
    mac = hmac.new(SECRET.encode(), naive.encode(), hashlib.sha256).digest()
    signature = signing.SIGNATURE_PREFIX + base64.b64encode(mac).decode()
    target = fields.pop("target")
    assert not signing.signature_matches(SECRET, signature, targets=[target], **fields)


def test_a_candidate_target_with_a_line_break_does_not_hide_the_next_one() -> None:
    # The server passes path and path+query; a query can decode to anything, and a refused
    # candidate must not stop the others from being compared.
    fields = {k: v for k, v in FIELDS.items() if k != "target"}
    for bad in ("/x?a=\r", "/x?a=\n"):
        targets = [bad, FIELDS["target"]]
        assert signing.signature_matches(SECRET, TOKEN_SIGNATURE, targets=targets, **fields)


class _NoOffset(tzinfo):
    """A tzinfo that does not know its offset: such a datetime is naive (Python docs)."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_a_datetime_whose_tzinfo_has_no_offset_is_refused() -> None:
    moment = datetime(2020, 8, 11, 8, 45, 42, tzinfo=_NoOffset())
    message = "timestamp must be timezone-aware (a naive datetime is ambiguous)"
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        signing.format_timestamp(moment)


@pytest.fixture(params=["WIB-7", "EST+5", "NZST-12"])
def local_timezone(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process's local time zone set to a POSIX TZ east or west of UTC, then restored."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        assert time.timezone != 0  # the zone really is not UTC
        yield request.param
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.mark.usefixtures("local_timezone")
def test_timestamps_are_utc_whatever_the_host_clock_zone() -> None:
    utc = datetime(2020, 8, 11, 8, 45, 42, tzinfo=UTC)
    assert signing.format_timestamp(utc) == "2020-08-11T08:45:42Z"
    assert signing.format_timestamp(utc.astimezone()) == "2020-08-11T08:45:42Z"  # local aware
    assert signing.parse_timestamp("2020-08-11T08:45:42Z") == utc


@pytest.mark.usefixtures("local_timezone")
def test_default_headers_carry_utc_now_on_a_host_not_in_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    headers = signing.signed_headers(
        client_id=FIELDS["client_id"], secret_key=SECRET, target="/file", body=None
    )
    after = datetime.now(UTC)
    stamped = signing.parse_timestamp(headers["Request-Timestamp"])
    # In the local zone's wall time it would be hours away from now.
    assert before <= stamped <= after


def test_the_timestamp_refusal_quotes_40_characters_and_the_form() -> None:
    value = "2020-08-11T08:45:42Z" + "0123456789" * 3  # 50 characters
    with pytest.raises(AuthenticationFailed) as caught:
        signing.parse_timestamp(value)
    assert caught.value.message == (
        f"Request-Timestamp {value[:40]!r} is not a UTC timestamp in the form "
        "YYYY-MM-DDTHH:MM:SSZ (for example 2020-08-11T08:45:42Z)."
    )
