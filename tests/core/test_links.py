"""Signed download links: round trip, tampering, expiry, malformed input."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from berkas.core.errors import PermissionDenied
from berkas.core.links import LinkSigner

SECRET = b"0123456789abcdef0123456789abcdef"
KEY = "berkas/dev/TEMP/BRN-0001-10791114622547/DOCUMENT/1676639713907.pdf"
NOW = 1_700_000_000
EXPIRES = NOW + 3600


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(SECRET)


def _code(signer: LinkSigner, key: str, expires: str, signature: str, now: int = NOW) -> str:
    with pytest.raises(PermissionDenied) as caught:
        signer.verify(key, expires, signature, now)
    return caught.value.code


def test_round_trip(signer: LinkSigner) -> None:
    signature = signer.sign(KEY, EXPIRES)
    assert len(signature) == 43
    assert "=" not in signature
    signer.verify(KEY, str(EXPIRES), signature, NOW)
    signer.verify(KEY, str(EXPIRES), signature, EXPIRES - 1)


def test_url_carries_a_verifiable_link(signer: LinkSigner) -> None:
    url = signer.url("https://files.example.com/base/", KEY, EXPIRES)
    parts = urlsplit(url)
    assert url.startswith("https://files.example.com/base/links/berkas/dev/TEMP/")
    query = parse_qs(parts.query)
    key = unquote(parts.path.removeprefix("/base/links/"))
    assert key == KEY
    assert query["expires"] == [str(EXPIRES)]
    signer.verify(key, query["expires"][0], query["signature"][0], NOW)


def test_a_different_secret_does_not_verify(signer: LinkSigner) -> None:
    other = LinkSigner(b"x" * 32)
    assert _code(other, KEY, str(EXPIRES), signer.sign(KEY, EXPIRES)) == "link_invalid"


def test_tampered_key_is_invalid(signer: LinkSigner) -> None:
    signature = signer.sign(KEY, EXPIRES)
    assert _code(signer, KEY.replace(".pdf", ".png"), str(EXPIRES), signature) == "link_invalid"


def test_tampered_expiry_is_invalid(signer: LinkSigner) -> None:
    signature = signer.sign(KEY, EXPIRES)
    assert _code(signer, KEY, str(EXPIRES + 86_400), signature) == "link_invalid"


def test_tampered_signature_is_invalid(signer: LinkSigner) -> None:
    signature = signer.sign(KEY, EXPIRES)
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    assert _code(signer, KEY, str(EXPIRES), flipped) == "link_invalid"


def test_expired_link_is_reported_as_expired(signer: LinkSigner) -> None:
    signature = signer.sign(KEY, EXPIRES)
    assert _code(signer, KEY, str(EXPIRES), signature, now=EXPIRES) == "link_expired"
    assert _code(signer, KEY, str(EXPIRES), signature, now=EXPIRES + 1) == "link_expired"


def test_tampered_and_expired_is_invalid_not_expired(signer: LinkSigner) -> None:
    signature = signer.sign(KEY, NOW - 10)
    assert _code(signer, KEY, str(NOW - 20), signature) == "link_invalid"


@pytest.mark.parametrize(
    "expires", ["abc", "", "-1", "+3600", " 3600", "3600 ", "1e9", "0" + str(EXPIRES), "٣٦٠٠"]
)
def test_malformed_expiry_is_invalid(signer: LinkSigner, expires: str) -> None:
    signature = signer.sign(KEY, EXPIRES)
    assert _code(signer, KEY, expires, signature) == "link_invalid"


@pytest.mark.parametrize(
    "signature", ["", "abc", "A" * 44, "A" * 42 + "=", "+" * 43, "A" * 42 + "é"]
)
def test_malformed_signature_is_invalid(signer: LinkSigner, signature: str) -> None:
    assert _code(signer, KEY, str(EXPIRES), signature) == "link_invalid"


@pytest.mark.parametrize(
    "key",
    [
        "",
        "a/../b",
        "../etc/passwd",
        "a/./b",
        "a//b",
        "/a/b",
        "a/b/",
        "a b",
        "a\nb",
        "a%2Fb",
        "a\\b",
        "é",
        "a" * 1025,
    ],
)
def test_bad_keys_are_invalid_on_verify_and_refused_on_sign(signer: LinkSigner, key: str) -> None:
    assert _code(signer, key, str(EXPIRES), "A" * 43) == "link_invalid"
    with pytest.raises(ValueError, match="object key"):
        signer.sign(key, EXPIRES)


@pytest.mark.parametrize("expires_at", [-1, True])
def test_sign_refuses_bad_expiry(signer: LinkSigner, expires_at: int) -> None:
    with pytest.raises(ValueError, match="expires_at"):
        signer.sign(KEY, expires_at)


@pytest.mark.parametrize("length", [0, 16, 31])
def test_short_secret_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        LinkSigner(b"k" * length)


def test_messages_tell_the_holder_what_to_do(signer: LinkSigner) -> None:
    signature = signer.sign(KEY, EXPIRES)
    with pytest.raises(PermissionDenied, match="expired; request a fresh link"):
        signer.verify(KEY, str(EXPIRES), signature, EXPIRES)


def test_a_generation_is_signed_and_generation_0_signs_as_links_always_did() -> None:
    signer = LinkSigner(b"s" * 32)
    key = "berkas/sandbox/TEMP/BRN-1/LOGO/1700000000000-0001.png"
    before = (
        base64.urlsafe_b64encode(
            hmac.new(b"s" * 32, f"{key}\n2000000000".encode(), hashlib.sha256).digest()
        )
        .rstrip(b"=")
        .decode()
    )

    assert signer.sign(key, 2_000_000_000) == before  # links issued before revocation existed
    assert signer.sign(key, 2_000_000_000, 1) != before
    signer.verify(key, "2000000000", signer.sign(key, 2_000_000_000, 2), 0, 2)
    for wrong in (0, 1, 3):
        with pytest.raises(PermissionDenied) as caught:
            signer.verify(key, "2000000000", signer.sign(key, 2_000_000_000, 2), 0, wrong)
        assert caught.value.code == "link_invalid"
