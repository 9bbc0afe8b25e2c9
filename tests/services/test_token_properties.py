"""Property: any single-byte change to a token ``TokenService.issue`` made is refused by
``TokenService.verify`` (header, claims or signature; substituted, dropped or added).

A JWT's parts are base64url text, and lenient decoders forgive some changes (a ``+``
for a ``-``, unused low bits in a segment's last character): those must be refused too,
or one token has many spellings. Bounded example counts: a few seconds in all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from berkas.adapters.db.memory import MemoryKeyStore
from berkas.adapters.keys import KeyRing, StoredKey, thumbprint
from berkas.core.errors import AuthenticationFailed
from berkas.core.models import Client
from berkas.services.tokens import TokenService
from tests.support.fakes import FakeClock
from tests.support.legacy import new_rsa_key, pem_of

CLIENT_ID = "BRN-0001-10791114622547"
PROPERTY = settings(max_examples=300, deadline=None)


class Clients:
    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, client_id: str) -> Client | None:
        return self.client if client_id == self.client.client_id else None


@dataclass
class Issued:
    service: TokenService
    token: str


@pytest.fixture(scope="module")
def issued() -> Issued:
    clock = FakeClock()
    key = new_rsa_key()
    store = MemoryKeyStore()
    store.add(
        StoredKey(thumbprint(key.public_key()), clock.now(), None),
        pem_of(key),
        replace_current=False,
    )
    ring = KeyRing.open(store, clock=clock, max_token_lifetime=timedelta(minutes=1440))
    clients = Clients(Client(CLIENT_ID, "SK-selftest-0000", True, clock.now()))
    service = TokenService(ring, clients, clock)  # type: ignore[arg-type]
    token = service.issue(CLIENT_ID, "60").token
    assert service.verify(token).client_id == CLIENT_ID
    return Issued(service, token)


# What a byte of a token may become: anything printable, a base64 neighbour, or a
# character outside ASCII.
replacements = st.one_of(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E),
    st.sampled_from(list("+/=-_.")),
    st.characters(min_codepoint=0x80, max_codepoint=0x2FF),
)


def refused(service: TokenService, token: str) -> bool:
    try:
        service.verify(token)
    except AuthenticationFailed:
        return True
    return False


@PROPERTY
@given(index=st.integers(min_value=0), new=replacements)
# The signature's last character carries four unused bits (256 bytes in 342 characters);
# and "-" and "+" (or "_" and "/") decode alike in a lenient decoder.
@example(index=-1, new="")
@example(index=-1, new="+")
def test_a_substituted_character_is_refused(issued: Issued, index: int, new: str) -> None:
    token = issued.token
    at = index % len(token)
    if new == "":  # the example above: a last character differing in unused bits only
        low = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        new = low[low.index(token[at]) ^ 1]
    if new == token[at]:
        new = "A" if token[at] != "A" else "B"
    assert refused(issued.service, token[:at] + new + token[at + 1 :])


@PROPERTY
@given(index=st.integers(min_value=0))
def test_a_dropped_character_is_refused(issued: Issued, index: int) -> None:
    token = issued.token
    at = index % len(token)
    assert refused(issued.service, token[:at] + token[at + 1 :])


@PROPERTY
@given(index=st.integers(min_value=0), new=replacements)
def test_an_added_character_is_refused(issued: Issued, index: int, new: str) -> None:
    token = issued.token
    at = index % (len(token) + 1)
    assert refused(issued.service, token[:at] + new + token[at:])


def test_every_dash_or_underscore_in_the_signature_read_as_standard_base64_is_refused(
    issued: Issued,
) -> None:
    # Exhaustive where it is cheap: each "-"/"_" of the signature swapped for "+"/"/".
    header, payload, signature = issued.token.split(".")
    swaps = [i for i, c in enumerate(signature) if c in "-_"]
    for i in swaps:
        other = {"-": "+", "_": "/"}[signature[i]]
        changed = signature[:i] + other + signature[i + 1 :]
        assert refused(issued.service, f"{header}.{payload}.{changed}"), i


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("padding on the signature", "=="),
        ("characters outside base64url after the signature", "!!!!"),
        ("whitespace after the signature", " "),
    ],
)
def test_another_spelling_of_the_same_signature_is_refused(
    issued: Issued, name: str, suffix: str
) -> None:
    # Decoded, these are the same signature bytes; as text, another token. Refused, so a
    # token has exactly one spelling (GHSA-hxm8-2xgr-2p9m: a list of revoked raw tokens
    # was bypassed by appending "!!!!" in PyJWT 2.13; "=" padding it still accepts).
    assert refused(issued.service, issued.token + suffix), name
