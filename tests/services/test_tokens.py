"""Issuing and verifying DOKU bearer tokens, including the forgeries DESIGN 2.2 lists."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from berkas.adapters.db.memory import MemoryDatabase, MemoryKeyStore
from berkas.adapters.keys import KeyRing, StoredKey, thumbprint
from berkas.core.errors import AuthenticationFailed, InvalidRequest
from berkas.core.models import Client
from berkas.core.ports import ClientRepository
from berkas.services.tokens import TokenService
from tests.support.fakes import FakeClock
from tests.support.legacy import new_rsa_key, pem_of

CLIENT_ID = "BRN-0001-10791114622547"
LIFETIME = timedelta(minutes=1440)


@pytest.fixture(scope="session")
def seed_key() -> tuple[str, bytes]:
    """One generated key, stored afresh per test: RSA generation is the slow part."""
    key = new_rsa_key()
    return thumbprint(key.public_key()), pem_of(key)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key_store(seed_key: tuple[str, bytes], clock: FakeClock) -> MemoryKeyStore:
    store = MemoryKeyStore()
    kid, pem = seed_key
    store.add(StoredKey(kid, clock.now(), None), pem, replace_current=False)
    return store


@pytest.fixture
def keys(key_store: MemoryKeyStore, clock: FakeClock) -> KeyRing:
    return KeyRing.open(key_store, clock=clock, max_token_lifetime=LIFETIME)


@pytest.fixture
def clients(clock: FakeClock) -> ClientRepository:
    repository = MemoryDatabase().clients
    repository.add(Client(CLIENT_ID, "SK-selftest-0000", True, clock.now()))
    repository.add(Client("BRN-0002-00000000000002", "SK-other-0000", True, clock.now()))
    return repository


@pytest.fixture
def service(keys: KeyRing, clients: ClientRepository, clock: FakeClock) -> TokenService:
    return TokenService(keys, clients, clock)


def published_kids(ring: KeyRing) -> list[str]:
    keys = ring.jwks()["keys"]
    assert isinstance(keys, list)
    return [key["kid"] for key in keys]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(document: Mapping[str, object]) -> str:
    return b64url(json.dumps(document, separators=(",", ":")).encode())


def claims_for(clock: FakeClock, client_id: str = CLIENT_ID) -> dict[str, object]:
    issued = int(clock.now().timestamp())
    return {
        "sub": "payload",
        "exp": issued + 300,
        "iat": issued,
        "user": {"businessServiceClientId": client_id},
    }


def sign(keys: KeyRing, claims: dict[str, object]) -> str:
    """A token signed by our real current key, with claims of the test's choosing."""
    current = keys.current()
    return jwt.encode(claims, current.private_key, algorithm="RS256", headers={"kid": current.kid})


def refused(service: TokenService, token: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as caught:
        service.verify(token)
    return caught.value


# Issuing


def test_token_carries_exactly_dokus_claims(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    issued = service.issue(CLIENT_ID, "360")

    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": keys.current().kid}
    # Verified with nothing but the published JWKS, as a partner would.
    public = jwt.PyJWKSet.from_dict(keys.jwks())[header["kid"]].key
    claims = jwt.decode(issued.token, public, algorithms=["RS256"])
    jti = claims.pop("jti")
    now = int(clock.now().timestamp())
    assert claims == {
        "sub": "payload",
        "exp": now + 360 * 60,
        "iat": now,
        "user": {"businessServiceClientId": CLIENT_ID},
    }
    # The client's token generation (0: never disabled or rotated), then a random id.
    assert re.fullmatch(r"0\.[0-9a-f]{32}", jti), jti
    assert issued.expires_at == clock.now() + timedelta(minutes=360)


def test_every_token_has_its_own_jti(service: TokenService) -> None:
    first = jwt.decode(service.issue(CLIENT_ID, None).token, options={"verify_signature": False})
    second = jwt.decode(service.issue(CLIENT_ID, None).token, options={"verify_signature": False})
    assert first["jti"] != second["jti"]


def test_valid_time_defaults_to_five_minutes(service: TokenService, clock: FakeClock) -> None:
    issued = service.issue(CLIENT_ID, None)
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300
    assert issued.expires_at == clock.now() + timedelta(minutes=5)


@pytest.mark.parametrize(("valid_time", "minutes"), [("1", 1), ("1440", 1440), (360, 360)])
def test_valid_time_accepts_positive_whole_minutes(
    service: TokenService, valid_time: object, minutes: int
) -> None:
    claims = jwt.decode(
        service.issue(CLIENT_ID, valid_time).token, options={"verify_signature": False}
    )
    assert claims["exp"] - claims["iat"] == minutes * 60


@pytest.mark.parametrize(
    "valid_time",
    ["0", 0, "-5", -5, "abc", "1.5", 1.5, 360.0, True, False, "", "  ", " 360", "360 ",
     "+360", "٣٦٠", "1e3", [], {}],
)  # fmt: skip
def test_valid_time_that_is_not_a_positive_whole_number_is_refused(
    service: TokenService, valid_time: object
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        service.issue(CLIENT_ID, valid_time)
    assert caught.value.code == "invalid_valid_time"
    assert "valid_time must be a whole number of minutes from 1 to 1440" in caught.value.message


@pytest.mark.parametrize("valid_time", ["1441", 1441, "9" * 5000, 10**100])
def test_valid_time_above_the_maximum_is_refused(service: TokenService, valid_time: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        service.issue(CLIENT_ID, valid_time)
    assert caught.value.code == "invalid_valid_time"
    assert "above the maximum of 1440 minutes" in caught.value.message
    assert len(caught.value.message) < 300  # a huge value is not echoed back whole


def test_maximum_is_configurable(
    keys: KeyRing, clients: ClientRepository, clock: FakeClock
) -> None:
    service = TokenService(keys, clients, clock, default_minutes=10, max_minutes=60)
    assert (
        jwt.decode(service.issue(CLIENT_ID, None).token, options={"verify_signature": False})["exp"]
        == int(clock.now().timestamp()) + 600
    )
    with pytest.raises(InvalidRequest, match="maximum of 60 minutes"):
        service.issue(CLIENT_ID, "61")


def test_default_above_maximum_is_a_configuration_error(
    keys: KeyRing, clients: ClientRepository, clock: FakeClock
) -> None:
    with pytest.raises(ValueError, match="between 1 and the maximum of 60 minutes"):
        TokenService(keys, clients, clock, default_minutes=61, max_minutes=60)


def test_no_token_for_a_disabled_or_unknown_client(
    service: TokenService, clients: ClientRepository
) -> None:
    clients.set_enabled(CLIENT_ID, False)
    with pytest.raises(AuthenticationFailed) as caught:
        service.issue(CLIENT_ID, "5")
    assert caught.value.code == "client_disabled"
    with pytest.raises(AuthenticationFailed) as caught:
        service.issue("BRN-9999-00000000000000", "5")
    assert caught.value.code == "client_unknown"


# Verifying


def test_issued_token_verifies_to_its_client(service: TokenService) -> None:
    client = service.verify(service.issue(CLIENT_ID, "5").token)
    assert client.client_id == CLIENT_ID


def test_empty_token_is_missing(service: TokenService) -> None:
    assert refused(service, "").code == "token_missing"
    assert refused(service, "   ").code == "token_missing"


@pytest.mark.parametrize("token", ["abc", "a.b.c", "a.b", "x" * 9000])
def test_garbage_is_malformed(service: TokenService, token: str) -> None:
    assert refused(service, token).code == "token_malformed"


def test_alg_none_is_refused(service: TokenService, keys: KeyRing, clock: FakeClock) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": keys.current().kid}
    token = f"{segment(header)}.{segment(claims_for(clock))}."

    error = refused(service, token)
    assert error.code == "token_algorithm_not_allowed"
    assert '"none"' in error.message


def test_hs256_signed_with_the_public_key_is_refused(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    # The classic algorithm-confusion forgery (CVE-2015-9235, CVE-2022-29217): the public
    # key, which anyone can fetch, used as an HMAC secret. PyJWT refuses to build it.
    public_pem = (
        keys.current()
        .private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": keys.current().kid}
    signing_input = f"{segment(header)}.{segment(claims_for(clock))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()

    error = refused(service, f"{signing_input}.{b64url(mac)}")
    assert error.code == "token_algorithm_not_allowed"


def test_unknown_kid_is_refused(service: TokenService, keys: KeyRing, clock: FakeClock) -> None:
    token = jwt.encode(
        claims_for(clock),
        keys.current().private_key,
        algorithm="RS256",
        headers={"kid": "not-a-key-of-ours"},
    )
    assert refused(service, token).code == "token_key_unknown"


def test_missing_kid_is_refused(service: TokenService, keys: KeyRing, clock: FakeClock) -> None:
    token = jwt.encode(claims_for(clock), keys.current().private_key, algorithm="RS256")
    assert refused(service, token).code == "token_malformed"


def test_foreign_key_claiming_our_kid_is_refused(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        claims_for(clock), stranger, algorithm="RS256", headers={"kid": keys.current().kid}
    )
    assert refused(service, token).code == "token_signature_invalid"


def test_tampered_payload_is_refused(service: TokenService, clock: FakeClock) -> None:
    header, _, signature = service.issue(CLIENT_ID, "5").token.split(".")
    forged = segment(claims_for(clock, client_id="BRN-0002-00000000000002"))

    assert refused(service, f"{header}.{forged}.{signature}").code == "token_signature_invalid"


def test_token_expires_after_valid_time_plus_30_seconds_leeway(
    service: TokenService, clock: FakeClock
) -> None:
    token = service.issue(CLIENT_ID, "5").token

    clock.current += timedelta(minutes=5, seconds=29)
    assert service.verify(token).client_id == CLIENT_ID  # within the clock-skew leeway
    clock.current += timedelta(seconds=1)
    error = refused(service, token)
    assert error.code == "token_expired"
    assert "request a new one" in error.message


def test_token_issued_in_the_future_is_refused(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    claims = claims_for(clock)
    claims["iat"] = int(clock.now().timestamp()) + 31
    assert refused(service, sign(keys, claims)).code == "token_not_yet_valid"


def test_nbf_in_the_future_is_refused_beyond_the_leeway(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    claims = claims_for(clock)
    ahead = int(clock.now().timestamp()) + 30
    claims["nbf"] = ahead
    assert service.verify(sign(keys, claims)).client_id == CLIENT_ID  # within leeway
    claims["nbf"] = ahead + 1
    error = refused(service, sign(keys, claims))
    assert error.code == "token_not_yet_valid"
    assert '"nbf"' in error.message


def test_lifetime_is_bounded_by_the_maximum_plus_leeway(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    # The service's maximum is 1440 minutes (TokenService's default).
    issued = int(clock.now().timestamp())
    claims = claims_for(clock)
    claims["exp"] = issued + 1440 * 60 + 30
    assert service.verify(sign(keys, claims)).client_id == CLIENT_ID
    claims["exp"] = issued + 1440 * 60 + 31
    assert refused(service, sign(keys, claims)).code == "token_lifetime_too_long"


def test_remaining_life_over_the_maximum_is_refused(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    # iat 25 s ahead (inside the leeway), exp - iat inside the bound, exp - now over it.
    issued = int(clock.now().timestamp()) + 25
    claims = claims_for(clock)
    claims.update(iat=issued, exp=issued + 1440 * 60 + 25)
    assert refused(service, sign(keys, claims)).code == "token_lifetime_too_long"


def test_the_bound_follows_the_configured_maximum(
    keys: KeyRing, clients: ClientRepository, clock: FakeClock
) -> None:
    service = TokenService(keys, clients, clock, max_minutes=60)
    claims = claims_for(clock)
    claims["exp"] = int(clock.now().timestamp()) + 61 * 60
    assert refused(service, sign(keys, claims)).code == "token_lifetime_too_long"


def test_exp_not_after_iat_is_malformed(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    claims = claims_for(clock)
    claims["exp"] = claims["iat"]
    error = refused(service, sign(keys, claims))
    assert error.code == "token_malformed"
    assert '"exp" is not after its "iat"' in error.message


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"sub": "someone"}, '"sub" is "someone"'),
        ({"sub": None}, 'lacks the "sub" claim'),
        ({"exp": None}, 'lacks the "exp" claim'),
        ({"iat": None}, 'lacks the "iat" claim'),
        ({"exp": "soon"}, '"exp" is not a whole number'),
        ({"iat": 1.5}, '"iat" is not a whole number'),
        ({"nbf": "now"}, '"nbf" is not a whole number'),
        ({"exp": True}, '"exp" is not a whole number'),
        ({"user": None}, "user.businessServiceClientId"),
        ({"user": {"businessServiceClientId": 7}}, "user.businessServiceClientId"),
    ],
)
def test_claims_not_shaped_like_ours_are_refused(
    service: TokenService,
    keys: KeyRing,
    clock: FakeClock,
    change: dict[str, object],
    problem: str,
) -> None:
    claims = claims_for(clock)
    claims.update(change)
    claims = {name: value for name, value in claims.items() if value is not None}

    error = refused(service, sign(keys, claims))
    assert error.code == "token_malformed"
    assert problem in error.message


def test_disabled_client_cannot_use_a_token_already_issued(
    service: TokenService, clients: ClientRepository
) -> None:
    token = service.issue(CLIENT_ID, "60").token
    clients.set_enabled(CLIENT_ID, False)

    assert refused(service, token).code == "client_disabled"


def test_tokens_minted_before_a_disable_stay_dead_after_the_enable(
    service: TokenService, clients: ClientRepository
) -> None:
    before = service.issue(CLIENT_ID, "60").token
    clients.set_enabled(CLIENT_ID, False)
    clients.set_enabled(CLIENT_ID, True)

    assert refused(service, before).code == "token_revoked"
    assert service.verify(service.issue(CLIENT_ID, "60").token).client_id == CLIENT_ID


def test_tokens_minted_before_a_secret_rotation_stop_working(
    service: TokenService, clients: ClientRepository, clock: FakeClock
) -> None:
    before = service.issue(CLIENT_ID, "60").token
    now = clock.now()
    # Even with a grace for the old secret: the grace is for signing, not for tokens.
    clients.rotate_secret(CLIENT_ID, "SK-rotated", now, now + timedelta(hours=1))

    assert refused(service, before).code == "token_revoked"
    assert service.verify(service.issue(CLIENT_ID, "60").token).client_id == CLIENT_ID


@pytest.mark.parametrize(
    ("jti", "code"),
    [
        ("1.abc", "token_revoked"),
        ("x.abc", "token_revoked"),
        ("-1.abc", "token_revoked"),
        ("0001.abc", "token_revoked"),
        ("\u0660.abc", "token_revoked"),  # Arabic-Indic zero: not a spelling of 0
        (7, "token_malformed"),  # RFC 7519 section 4.1.7: a jti is a string
    ],
)
def test_a_jti_naming_another_generation_is_refused(
    service: TokenService, keys: KeyRing, clock: FakeClock, jti: object, code: str
) -> None:
    # Generation 0 is current: any other generation (or an unreadable one) is refused.
    claims = claims_for(clock)
    claims["jti"] = jti
    assert refused(service, sign(keys, claims)).code == code


def test_token_for_an_unknown_client_is_refused(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    token = sign(keys, claims_for(clock, client_id="BRN-9999-00000000000000"))
    assert refused(service, token).code == "client_unknown"


# Key rotation


def test_rotated_out_key_verifies_until_retired_plus_lifetime_then_pruned(
    service: TokenService, keys: KeyRing, clock: FakeClock
) -> None:
    old_token = service.issue(CLIENT_ID, "1440").token
    old_kid = keys.current().kid
    keys.rotate()
    retired_at = clock.now()

    new_token = service.issue(CLIENT_ID, "5").token
    assert jwt.get_unverified_header(new_token)["kid"] == keys.current().kid != old_kid
    assert service.verify(old_token).client_id == CLIENT_ID
    assert service.verify(new_token).client_id == CLIENT_ID
    assert set(published_kids(keys)) == {keys.current().kid, old_kid}

    clock.current = retired_at + LIFETIME
    assert keys.prune() == [old_kid]
    assert old_kid not in set(published_kids(keys))
    assert refused(service, old_token).code == "token_key_unknown"


def test_key_rotated_by_another_node_verifies_without_restart(
    keys: KeyRing, key_store: MemoryKeyStore, clients: ClientRepository, clock: FakeClock
) -> None:
    server = KeyRing.open(key_store, clock=clock, max_token_lifetime=LIFETIME, refresh_interval=0)
    verifier = TokenService(server, clients, clock)
    keys.rotate()  # another node, or the CLI, sharing the database
    token = TokenService(keys, clients, clock).issue(CLIENT_ID, "5").token

    assert verifier.verify(token).client_id == CLIENT_ID
    assert server.current().kid == keys.current().kid
