"""Properties of DOKU's HMAC request signing (DESIGN 2.1), over arbitrary requests.

A signature made by ``sign`` verifies with ``signature_matches`` for every request, and
any single-byte change to the body, the target, the Request-Id, the timestamp or the
signature itself makes it fail. Bounded example counts: a few seconds in all.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from berkas.core import signing

PROPERTY = settings(max_examples=200, deadline=None)

# Header values as they arrive: any text without a line break (string_to_sign refuses
# those; a field with one never verifies, see test_signing.py).
field = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1, max_size=64)
ascii_field = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64
)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
bodies = st.one_of(st.none(), st.binary(max_size=512))


@st.composite
def requests(draw: st.DrawFn, text: st.SearchStrategy[str] = field) -> dict[str, object]:
    return {
        "secret_key": draw(text),
        "client_id": draw(text),
        "request_id": draw(text),
        "timestamp": signing.format_timestamp(draw(moments)),
        "target": "/" + draw(text),
        "body": draw(bodies),
    }


def verifies(request: dict[str, object], signature: str) -> bool:
    body = request["body"]
    assert body is None or isinstance(body, bytes)
    return signing.signature_matches(
        str(request["secret_key"]),
        signature,
        client_id=str(request["client_id"]),
        request_id=str(request["request_id"]),
        timestamp=str(request["timestamp"]),
        targets=[str(request["target"])],
        digest=None if body is None else signing.digest(body),
    )


def signature_of(request: dict[str, object]) -> str:
    body = request["body"]
    assert body is None or isinstance(body, bytes)
    return signing.sign(
        str(request["secret_key"]),
        client_id=str(request["client_id"]),
        request_id=str(request["request_id"]),
        timestamp=str(request["timestamp"]),
        target=str(request["target"]),
        digest=None if body is None else signing.digest(body),
    )


def changed_byte(data: bytes, index: int, new: int) -> bytes:
    index %= len(data)
    replacement = new if new != data[index] else (new + 1) % 256
    return data[:index] + bytes([replacement]) + data[index + 1 :]


def changed_char(text: str, index: int, new: int) -> str:
    """``text`` with the byte at ``index`` replaced (for ASCII text a byte is a char)."""
    changed = changed_byte(text.encode("ascii"), index, new)
    return changed.decode("latin-1")


@PROPERTY
@given(requests())
def test_every_signed_request_verifies(request: dict[str, object]) -> None:
    signature = signature_of(request)
    assert signature.startswith(signing.SIGNATURE_PREFIX)
    assert verifies(request, signature)


@PROPERTY
@given(requests(), st.integers(min_value=0), st.integers(0, 255))
def test_a_changed_body_byte_fails(request: dict[str, object], index: int, new: int) -> None:
    body = request["body"]
    signature = signature_of(request)
    if not body:
        # No body, or an empty one: any byte at all is a change (and a GET's missing
        # Digest line against a body's present one).
        tampered = bytes([new])
    else:
        assert isinstance(body, bytes)
        tampered = changed_byte(body, index, new)
    assert not verifies({**request, "body": tampered}, signature)


@PROPERTY
@given(
    requests(ascii_field),
    st.sampled_from(["target", "request_id", "timestamp", "client_id"]),
    st.integers(min_value=0),
    st.integers(0, 255),
)
def test_a_changed_byte_in_a_signed_field_fails(
    request: dict[str, object], name: str, index: int, new: int
) -> None:
    signature = signature_of(request)
    tampered = {**request, name: changed_char(str(request[name]), index, new)}
    assert not verifies(tampered, signature)


@PROPERTY
@given(requests(), st.integers(min_value=0), st.integers(0, 255))
# The last base64 character before the padding carries two unused bits: a change there
# that a lenient base64 decoder would forgive must fail all the same.
@example(
    {
        "secret_key": "SK-selftest-0000",
        "client_id": "BRN-0001-10791114622547",
        "request_id": "fdb69f47-96da-499d-acec-7cdc318ab2fe",
        "timestamp": "2020-08-11T08:45:42Z",
        "target": "/adv-core-api/partner/v1.0/file",
        "body": None,
    },
    len(signing.SIGNATURE_PREFIX) + 42,
    ord("N"),
)
def test_a_changed_signature_byte_fails(request: dict[str, object], index: int, new: int) -> None:
    signature = signature_of(request)
    assert not verifies(request, changed_char(signature, index, new))
