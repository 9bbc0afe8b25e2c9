"""Link parameters have one spelling each, and every refusal says what was wrong.

Issue 19 (item 6): the malformed-expiry vectors of test_links.py spell other numbers
than the one signed, so a pattern that also took ``+<n>`` or another script's digits
for the signed ``<n>`` (two URLs for one link, and so two cache keys, two log lines, two
replays) went unnoticed. Here every alternative spelling is of the signed number itself.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from berkas.core.errors import PermissionDenied
from berkas.core.links import LinkSigner

SECRET = b"0123456789abcdef0123456789abcdef"
KEY = "berkas/dev/TEMP/BRN-0001-10791114622547/DOCUMENT/1676639713907.pdf"
NOW = 1_700_000_000
EXPIRES = NOW + 3600  # 1700003600
SIGNER = LinkSigner(SECRET)

# Every Unicode decimal digit zero (category Nd); its script's digits follow it in order.
ZEROS = [
    chr(cp)
    for cp in range(sys.maxunicode + 1)
    if unicodedata.category(chr(cp)) == "Nd" and unicodedata.digit(chr(cp)) == 0
]


def _in_script(digits: str, zero: str) -> str:
    """``digits`` written with the decimal digits whose zero is ``zero``."""
    return "".join(chr(ord(zero) + int(d)) for d in digits)


def _refusal(expires: str, signature: str, key: str = KEY, now: int = NOW) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        SIGNER.verify(key, expires, signature, now)
    return caught.value


@pytest.mark.parametrize(
    "spelling",
    [
        "+1700003600",
        " 1700003600",
        "1700003600 ",
        "\t1700003600",
        "1700003600\n",
        "01700003600",
        "001700003600",
        "1_700_003_600",
        "1700003600.0",
        _in_script("1700003600", "\u0660"),  # Arabic-Indic digits
        _in_script("1700003600", "\u06f0"),  # Extended Arabic-Indic (Persian) digits
        _in_script("1700003600", "\uff10"),  # fullwidth digits
        _in_script("1700003600", "\u0966"),  # Devanagari digits
        "1" + _in_script("7", "\uff10") + "00003600",  # one fullwidth digit among ASCII
        "\u30001700003600",  # ideographic space
    ],
)
def test_another_spelling_of_the_signed_expiry_is_refused(spelling: str) -> None:
    signature = SIGNER.sign(KEY, EXPIRES)
    assert int(spelling.replace(".0", "")) == EXPIRES  # the same number, to Python
    SIGNER.verify(KEY, "1700003600", signature, NOW)  # the one spelling that works
    refusal = _refusal(spelling, signature)
    assert refusal.code == "link_invalid"
    assert refusal.message == "This link's expires parameter must be epoch seconds (digits only)."


@st.composite
def other_spellings(draw: st.DrawFn, n: int) -> str:
    """A text ``int()`` reads as ``n`` that is not ``str(n)``."""
    digits = str(n)
    kind = draw(st.sampled_from(["sign", "zeros", "space", "underscore", "script"]))
    if kind == "sign":
        return "+" + digits
    if kind == "zeros":
        return "0" * draw(st.integers(1, 3)) + digits
    if kind == "space":
        space = draw(st.sampled_from([" ", "\t", "\n", "\r", "\x0b", "\x0c", "\u3000", "\u2003"]))
        return draw(st.sampled_from([space + digits, digits + space, space + digits + space]))
    if kind == "underscore" and len(digits) > 1:
        cut = draw(st.integers(1, len(digits) - 1))
        return digits[:cut] + "_" + digits[cut:]
    # Some digits, at least one, from other scripts: int() maps each Nd digit to its value.
    swap = draw(st.lists(st.booleans(), min_size=len(digits), max_size=len(digits)))
    swap[draw(st.integers(0, len(digits) - 1))] = True
    zeros = [draw(st.sampled_from(ZEROS[1:])) for _ in digits]  # ZEROS[0] is ASCII "0"
    return "".join(
        chr(ord(zero) + int(d)) if s else d for d, s, zero in zip(digits, swap, zeros, strict=True)
    )


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10**12 - 1).flatmap(lambda n: st.tuples(st.just(n), other_spellings(n))))
@example((1_700_003_600, "+1700003600"))
@example((5, "\u0665"))  # ARABIC-INDIC DIGIT FIVE
def test_any_second_spelling_of_a_signed_expiry_is_refused(case: tuple[int, str]) -> None:
    n, spelling = case
    assert spelling != str(n)
    assert int(spelling) == n
    signature = SIGNER.sign(KEY, n)
    SIGNER.verify(KEY, str(n), signature, 0)
    assert _refusal(spelling, signature, now=0).code == "link_invalid"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "a/../b"}, "This link's file path is not valid."),
        ({"expires": "-1"}, "This link's expires parameter must be epoch seconds (digits only)."),
        ({"signature": "A" * 42}, "This link's signature parameter is malformed."),
        ({"signature": "A" * 43}, "This link's signature does not match; request a fresh link."),
        ({"now": EXPIRES}, "This link has expired; request a fresh link for the file."),
    ],
)
def test_each_refusal_tells_the_holder_what_was_wrong(
    kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {
        "key": KEY,
        "expires": str(EXPIRES),
        "signature": SIGNER.sign(KEY, EXPIRES),
        "now": NOW,
        **kwargs,
    }
    with pytest.raises(PermissionDenied) as caught:
        SIGNER.verify(**args)  # type: ignore[arg-type]
    assert caught.value.message == message
    assert caught.value.code == ("link_expired" if "now" in kwargs else "link_invalid")


def test_epoch_zero_is_a_valid_expiry_and_a_link_to_it_is_expired() -> None:
    signature = SIGNER.sign(KEY, 0)
    SIGNER.verify(KEY, "0", signature, -1)
    assert _refusal("0", signature, now=0).code == "link_expired"


def test_a_refused_key_is_named_in_the_programming_error() -> None:
    long_key = "a/" + "b" * 100 + "/../c"
    # The first 80 characters of the key, as repr, then the problem.
    with pytest.raises(ValueError, match=f"^{re.escape(f'object key {long_key[:80]!r} has ')}"):
        SIGNER.sign(long_key, EXPIRES)


@pytest.mark.parametrize("generation", [1, 7])
def test_a_url_carries_the_signature_of_its_generation(generation: int) -> None:
    url = SIGNER.url("https://files.example.com", KEY, EXPIRES, generation)
    query = parse_qs(urlsplit(url).query)
    assert query["signature"] == [SIGNER.sign(KEY, EXPIRES, generation)]
    SIGNER.verify(KEY, str(EXPIRES), query["signature"][0], NOW, generation)
    with pytest.raises(PermissionDenied):
        SIGNER.verify(KEY, str(EXPIRES), query["signature"][0], NOW, 0)


@pytest.mark.parametrize(
    ("base", "prefix"),
    [
        ("https://files.example.com/KYC-BOX/", "https://files.example.com/KYC-BOX/links/"),
        ("https://files.example.com/KYC-BOX", "https://files.example.com/KYC-BOX/links/"),
        ("https://files.example.com//", "https://files.example.com/links/"),
    ],
)
def test_a_url_keeps_its_base_path_whole(base: str, prefix: str) -> None:
    url = SIGNER.url(base, "berkas/X/FILE-X.pdf", EXPIRES)
    assert url.startswith(prefix + "berkas/X/FILE-X.pdf?expires=1700003600&signature=")
