"""Token claims a signature does not vouch for (issue 9, defect 3), against a real server.

Tokens signed with the server's own key (read from its data dir, as a leaked key or an
issuer bug would give them) must still be refused when their times are not what
POST /token could have issued: a lifetime over the maximum ``valid_time`` (1440 minutes
by default), ``nbf`` or ``iat`` in the future, no ``exp`` or ``iat``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from tests.support import samples
from tests.support.errors import assert_error
from tests.support.partner import PREFIX, Partner
from tests.support.server import Server
from tests.support.tokens import claims, current_kid, signed

MAX_SECONDS = 1440 * 60
LEEWAY = 30
TEN_YEARS = 10 * 365 * 24 * 3600


@dataclass
class Target:
    """A running server, its signing key and kid, and one partner's stored file."""

    server: Server
    key: RSAPrivateKey
    kid: str
    partner: Partner
    file_id: str

    def get(self, token: str) -> httpx.Response:
        return httpx.get(
            f"{self.server.url}{PREFIX}/file/{self.file_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def forge(self, **changes: object) -> str:
        lifetime = changes.pop("lifetime", 300)
        assert isinstance(lifetime, int)
        return signed(self.key, self.kid, claims(self.partner.client_id, lifetime, **changes))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = Server(data_dir=tmp_path_factory.mktemp("claims") / "data")
    server.start()
    try:
        partner = server.new_partner()
        stored = partner.upload(samples.jpeg(seed=5), category="LOGO", code=None)
        assert stored.status_code == 200, stored.text
        yield Target(
            server, server.signing_key(), current_kid(server.url), partner, stored.json()["id"]
        )
    finally:
        server.stop()


def test_a_forged_token_within_the_rules_is_accepted(target: Target) -> None:
    # The control: the forging itself is sound, so each refusal below is the claim's.
    assert target.get(target.forge()).status_code == 200
    assert target.get(target.forge(lifetime=MAX_SECONDS)).status_code == 200


def now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("name", "changes", "code"),
    [
        ("exp ten years ahead", {"lifetime": TEN_YEARS}, "token_lifetime_too_long"),
        (
            "lifetime just over the maximum",
            {"lifetime": MAX_SECONDS + 120},
            "token_lifetime_too_long",
        ),
        ("nbf an hour ahead", {"nbf": "later"}, "token_not_yet_valid"),
        ("iat an hour ahead", {"iat": "later"}, "token_not_yet_valid"),
        ("no exp", {"exp": None}, "token_malformed"),
        ("no iat", {"iat": None}, "token_malformed"),
        ("nbf as a string", {"nbf": "0"}, "token_malformed"),
    ],
)
def test_signed_tokens_with_impossible_times_are_refused(
    target: Target, name: str, changes: dict[str, object], code: str
) -> None:
    later = now() + 3600
    resolved = {k: (later if v == "later" else v) for k, v in changes.items()}
    response = target.get(target.forge(**resolved))
    error = assert_error(response, 401, code)
    assert error["type"] == "authentication_error", name
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


def test_a_token_whose_remaining_life_is_over_the_maximum_is_refused(target: Target) -> None:
    # iat just inside the leeway ahead, exp - iat just inside the maximum: what is left
    # of its life (exp - now) is still over the maximum plus leeway.
    issued = now() + LEEWAY - 5
    token = target.forge(iat=issued, exp=issued + MAX_SECONDS + LEEWAY - 5)
    assert_error(target.get(token), 401, "token_lifetime_too_long")
