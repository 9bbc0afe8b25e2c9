"""The bearer-token attack list as a corpus (issue 9), against a real ``berkas serve``.

Every vector is a token (or Authorization header) an attacker could send: ``alg: none``
in its spellings, HS256 keyed with our public key (CVE-2015-9235, CVE-2016-10555,
PyJWT's CVE-2022-29217), a foreign RSA key, an unknown ``kid``, keys offered by the token
itself (``jwk``/``jku``/``x5u``, RFC 8725 section 3.10 and CVE-2018-0114), a stripped
signature, claims of the wrong type, an expired token, a disabled client's token and a
partner's token on another partner's file. Each is refused with 401, 403 or 404 in the
envelope, never a 5xx; the server's own 5xx count (``/metrics``) stays 0. Each vector
is tallied under family ``token`` (tests/support/vectors.py).
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from tests.support import samples
from tests.support.errors import assert_error
from tests.support.fixture_server import FixtureServer, send
from tests.support.partner import PREFIX, Partner, until_token_refused
from tests.support.server import Server
from tests.support.tokens import b64url, claims, current_kid, segment, signed
from tests.support.vectors import server_errors, tally

REFUSED = {401, 403, 404}


@dataclass
class Context:
    server: Server
    key: RSAPrivateKey
    kid: str
    public_pem: bytes
    public_jwk: dict[str, Any]
    foreign: RSAPrivateKey
    foreign_jwk: dict[str, Any]
    elsewhere: FixtureServer  # serves the foreign key's JWKS; must never be asked
    a: Partner  # owns a_file
    a_file: str
    b_file: str  # partner B's
    disabled_token: str  # issued by POST /token, then its client was disabled

    def claims(self, lifetime: int = 300, **changes: object) -> dict[str, Any]:
        return claims(self.a.client_id, lifetime, **changes)

    def ours(self, lifetime: int = 300, **changes: object) -> str:
        """Signed with the server's own key and kid: only the claims are wrong."""
        return signed(self.key, self.kid, self.claims(lifetime, **changes))


def _jwk(public: RSAPublicKey, kid: str) -> dict[str, Any]:
    document = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    return {**document, "kid": kid, "alg": "RS256", "use": "sig"}


def _hs256(
    header: dict[str, Any], body: dict[str, Any], secret: bytes, digest: str = "sha256"
) -> str:
    # By hand: PyJWT itself refuses to HMAC with a PEM public key (its CVE-2022-29217 fix).
    signing_input = f"{segment(header)}.{segment(body)}"
    mac = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(mac)}"


def _rs256_raw(key: RSAPrivateKey, header: object, body: object) -> str:
    # By hand, for headers and claims PyJWT will not encode (a kid that is no string).
    signing_input = f"{segment_any(header)}.{segment_any(body)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def segment_any(document: object) -> str:
    return b64url(json.dumps(document, separators=(",", ":")).encode())


def _unsigned(alg: str, ctx: Context, signature: str = "") -> str:
    header = {"alg": alg, "typ": "JWT", "kid": ctx.kid}
    return f"{segment(header)}.{segment(ctx.claims())}.{signature}"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    server = Server(data_dir=tmp_path_factory.mktemp("token-attacks") / "data")
    server.start()
    try:
        a, b, c = server.new_partner(), server.new_partner(), server.new_partner()
        files = []
        for partner in (a, b):
            stored = partner.upload(samples.jpeg(seed=7), category="LOGO", code=None)
            assert stored.status_code == 200, stored.text
            files.append(stored.json()["id"])
        disabled_token = c.token
        server.cli("clients", "disable", c.client_id)
        until_token_refused(server.http, disabled_token)  # docs/design.md 2.1: the cache bound
        kid = current_kid(server.url)
        published = httpx.get(f"{server.url}/.well-known/jwks.json", timeout=10).json()
        public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(published["keys"][0]))
        assert isinstance(public, RSAPublicKey)
        foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        foreign_jwk = _jwk(foreign.public_key(), "attacker-key")
        with FixtureServer() as elsewhere:
            jwks = json.dumps({"keys": [foreign_jwk]}).encode()
            elsewhere.route("/jwks.json", send(200, jwks, content_type="application/json"))
            elsewhere.route("/cert.pem", send(200, b"-----BEGIN CERTIFICATE-----\n"))
            yield Context(
                server=server,
                key=server.signing_key(),
                kid=kid,
                public_pem=public.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                public_jwk=published["keys"][0],
                foreign=foreign,
                foreign_jwk=foreign_jwk,
                elsewhere=elsewhere,
                a=a,
                a_file=files[0],
                b_file=files[1],
                disabled_token=disabled_token,
            )
            # The token named them; nothing of ours ever went to fetch a key there.
            assert elsewhere.connections == []
        assert server_errors("token", server.metrics_url) == 0
        assert "Traceback" not in server.output()
    finally:
        server.stop()


Vector = Callable[[Context], str]
LATER = 3600


def _foreign_with(ctx: Context, **headers: object) -> str:
    return jwt.encode(ctx.claims(), ctx.foreign, algorithm="RS256", headers=headers)


def _stripped(ctx: Context) -> str:
    header, body, _ = ctx.ours().split(".")
    return f"{header}.{body}."


def _ours_other_alg(alg: str) -> Vector:
    return lambda ctx: jwt.encode(ctx.claims(), ctx.key, algorithm=alg, headers={"kid": ctx.kid})


def _ec_foreign(ctx: Context) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(ctx.claims(), key, algorithm="ES256", headers={"kid": ctx.kid})


def _raw_header(header: object) -> Vector:
    def build(ctx: Context) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
        return f"{raw}.{segment(ctx.claims())}.{ctx.ours().split('.')[2]}"

    return build


def _flipped(token: str) -> str:
    # One character of the signature changed (not the last, which carries padding bits).
    return token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]


def _swapped_payload(ctx: Context) -> str:
    # Our valid signature over one body, carried by another (a longer-lived claim set).
    header, _, signature = ctx.ours().split(".")
    return f"{header}.{segment(ctx.claims(lifetime=600))}.{signature}"


# name -> (token builder, the code it must be refused with; None: any refusal code)
VECTORS: dict[str, tuple[Vector, str | None]] = {
    # alg none (CVE-2015-9235 and kin): the header's alg is never trusted.
    "alg none, empty signature": (lambda c: _unsigned("none", c), "token_algorithm_not_allowed"),
    "alg None": (lambda c: _unsigned("None", c), "token_algorithm_not_allowed"),
    "alg NONE": (lambda c: _unsigned("NONE", c), "token_algorithm_not_allowed"),
    "alg nOnE": (lambda c: _unsigned("nOnE", c), "token_algorithm_not_allowed"),
    "alg none, our real signature": (
        lambda c: _unsigned("none", c, c.ours().split(".")[2]),
        "token_algorithm_not_allowed",
    ),
    "alg none, two segments": (
        lambda c: _unsigned("none", c).rstrip("."),
        "token_malformed",
    ),
    "alg empty": (lambda c: _unsigned("", c), "token_algorithm_not_allowed"),
    "alg missing": (
        lambda c: f"{segment({'typ': 'JWT', 'kid': c.kid})}.{segment(c.claims())}.",
        "token_algorithm_not_allowed",
    ),
    # HS256 keyed with our public key (algorithm confusion).
    "HS256 keyed with the public key PEM": (
        lambda c: _hs256({"alg": "HS256", "kid": c.kid}, c.claims(), c.public_pem),
        "token_algorithm_not_allowed",
    ),
    "HS256 keyed with the PEM, no trailing newline": (
        lambda c: _hs256({"alg": "HS256", "kid": c.kid}, c.claims(), c.public_pem.strip()),
        "token_algorithm_not_allowed",
    ),
    "HS256 keyed with the JWKS entry": (
        lambda c: _hs256(
            {"alg": "HS256", "kid": c.kid}, c.claims(), json.dumps(c.public_jwk).encode()
        ),
        "token_algorithm_not_allowed",
    ),
    "HS256 keyed with the JWK modulus": (
        lambda c: _hs256({"alg": "HS256", "kid": c.kid}, c.claims(), c.public_jwk["n"].encode()),
        "token_algorithm_not_allowed",
    ),
    "HS512 keyed with the public key PEM": (
        lambda c: _hs256({"alg": "HS512", "kid": c.kid}, c.claims(), c.public_pem, "sha512"),
        "token_algorithm_not_allowed",
    ),
    # Our key, another algorithm: only RS256 is accepted.
    "RS512 with our key": (_ours_other_alg("RS512"), "token_algorithm_not_allowed"),
    "PS256 with our key": (_ours_other_alg("PS256"), "token_algorithm_not_allowed"),
    "ES256 with a foreign key and our kid": (_ec_foreign, "token_algorithm_not_allowed"),
    # Keys that are not ours.
    "foreign RSA key, our kid": (
        lambda c: signed(c.foreign, c.kid, c.claims()),
        "token_signature_invalid",
    ),
    "foreign RSA key, its own kid": (
        lambda c: signed(c.foreign, "attacker-key", c.claims()),
        "token_key_unknown",
    ),
    "our key, unknown kid": (
        lambda c: signed(c.key, "no-such-kid", c.claims()),
        "token_key_unknown",
    ),
    "our key, no kid": (
        lambda c: jwt.encode(c.claims(), c.key, algorithm="RS256"),
        "token_malformed",
    ),
    "our key, kid an integer": (
        lambda c: _rs256_raw(c.key, {"alg": "RS256", "kid": 1}, c.claims()),
        "token_malformed",
    ),
    "our key, kid null": (
        lambda c: _rs256_raw(c.key, {"alg": "RS256", "kid": None}, c.claims()),
        "token_malformed",
    ),
    "our key, kid a path": (
        lambda c: signed(c.key, "../../../etc/passwd", c.claims()),
        "token_key_unknown",
    ),
    "our key, kid SQL": (
        lambda c: signed(c.key, "' OR '1'='1", c.claims()),
        "token_key_unknown",
    ),
    # Keys the token offers itself (RFC 8725 section 3.10; CVE-2018-0114 for jwk).
    "jwk header with the foreign key, no kid": (
        lambda c: _foreign_with(c, jwk=c.foreign_jwk),
        "token_malformed",
    ),
    "jwk header with the foreign key, our kid": (
        lambda c: _foreign_with(c, jwk=c.foreign_jwk, kid=c.kid),
        "token_signature_invalid",
    ),
    "jku elsewhere, foreign kid": (
        lambda c: _foreign_with(c, jku=c.elsewhere.url("/jwks.json"), kid="attacker-key"),
        "token_key_unknown",
    ),
    "jku elsewhere, our kid": (
        lambda c: _foreign_with(c, jku=c.elsewhere.url("/jwks.json"), kid=c.kid),
        "token_signature_invalid",
    ),
    "x5u elsewhere, our kid": (
        lambda c: _foreign_with(c, x5u=c.elsewhere.url("/cert.pem"), kid=c.kid),
        "token_signature_invalid",
    ),
    "x5u elsewhere, foreign kid": (
        lambda c: _foreign_with(c, x5u=c.elsewhere.url("/cert.pem"), kid="attacker-key"),
        "token_key_unknown",
    ),
    # Signatures removed or moved.
    "stripped signature": (_stripped, "token_signature_invalid"),
    "signature of another payload": (_swapped_payload, "token_signature_invalid"),
    # Five characters off a 342-character RS256 signature leave a length no base64url
    # spelling has (337 = 1 mod 4). Four off left a valid length whose last character was
    # canonical one time in sixteen: then the signature check, not the shape, refused it.
    "signature truncated": (lambda c: c.ours()[:-5], "token_malformed"),
    "signature one bit off": (
        lambda c: _flipped(c.ours()),
        "token_signature_invalid",
    ),
    # Headers that are not JSON objects.
    "header a JSON array": (_raw_header(["RS256"]), "token_malformed"),
    "header a JSON string": (_raw_header("RS256"), "token_malformed"),
    "header not base64": (lambda c: "%%%." + c.ours().split(".", 1)[1], "token_malformed"),
    "four segments": (lambda c: c.ours() + ".AAAA", "token_malformed"),
    "megabytes of token": (lambda c: "a" * 100_000, "token_malformed"),
    # Claims of the wrong type, signed with our own key.
    "exp as a string": (lambda c: c.ours(exp=str(int(time.time()) + 300)), "token_malformed"),
    "exp as a float": (lambda c: c.ours(exp=time.time() + 300.5), "token_malformed"),
    "exp as a boolean": (lambda c: c.ours(exp=True), "token_malformed"),
    "iat as a string": (lambda c: c.ours(iat="now"), "token_malformed"),
    "exp an object": (lambda c: c.ours(exp={"$gt": 0}), "token_malformed"),
    "user a string": (lambda c: c.ours(user=c.a.client_id), "token_malformed"),
    "user a list": (
        lambda c: c.ours(user=[{"businessServiceClientId": c.a.client_id}]),
        "token_malformed",
    ),
    "client id an integer": (
        lambda c: c.ours(user={"businessServiceClientId": 10791114622547}),
        "token_malformed",
    ),
    "client id a list": (
        lambda c: c.ours(user={"businessServiceClientId": [c.a.client_id]}),
        "token_malformed",
    ),
    "client id empty": (lambda c: c.ours(user={"businessServiceClientId": ""}), "token_malformed"),
    "sub not DOKU's": (lambda c: c.ours(sub="admin"), "token_malformed"),
    "no sub": (lambda c: c.ours(sub=None), "token_malformed"),
    "claims a JSON array": (
        lambda c: jwt.api_jws.PyJWS().encode(
            b"[1,2]", c.key, algorithm="RS256", headers={"kid": c.kid}
        ),
        "token_malformed",
    ),
    # Times (RFC 7519 sections 4.1.4, 4.1.5).
    "expired an hour ago": (
        lambda c: c.ours(exp=int(time.time()) - LATER, iat=int(time.time()) - 2 * LATER),
        "token_expired",
    ),
    "exp ten years ahead": (
        lambda c: c.ours(lifetime=10 * 365 * 24 * 3600),
        "token_lifetime_too_long",
    ),
    "nbf an hour ahead": (lambda c: c.ours(nbf=int(time.time()) + LATER), "token_not_yet_valid"),
    "iat an hour ahead": (lambda c: c.ours(iat=int(time.time()) + LATER), "token_not_yet_valid"),
    # Clients.
    "unknown client": (
        lambda c: c.ours(user={"businessServiceClientId": "BRN-9999-99999999999999"}),
        "client_unknown",
    ),
    "disabled client's issued token": (lambda c: c.disabled_token, "client_disabled"),
}


@pytest.mark.parametrize("name", list(VECTORS))
def test_attack_tokens_are_refused_on_every_bearer_endpoint(ctx: Context, name: str) -> None:
    build, code = VECTORS[name]
    token = build(ctx)
    headers = {"Authorization": f"Bearer {token}"}
    answers = [
        httpx.get(f"{ctx.server.url}{PREFIX}/file/{ctx.a_file}", headers=headers, timeout=30),
        ctx.a.upload(samples.jpeg(seed=8), category="LOGO", code=None, token=token),
    ]
    for response in answers:
        tally("token", response.status_code)
        assert response.status_code in REFUSED, (name, response.status_code, response.text)
        if code is not None:
            assert_error(response, 401, code)
        if code is not None and code.startswith("token_"):
            assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b", "Bearer\ttoken"],
)
def test_authorization_headers_that_carry_no_token_are_refused(
    ctx: Context, authorization: str
) -> None:
    response = httpx.get(
        f"{ctx.server.url}{PREFIX}/file/{ctx.a_file}",
        headers={"Authorization": authorization} if authorization else {},
        timeout=30,
    )
    tally("token", response.status_code)
    assert response.status_code == 401, response.text
    assert_error(response, 401, response.json()["error"]["code"])


def test_a_partners_token_on_another_partners_file_is_404(ctx: Context) -> None:
    # Existence is never revealed (DESIGN 3): the same answer as for no such file.
    other = httpx.get(
        f"{ctx.server.url}{PREFIX}/file/{ctx.b_file}", headers=ctx.a.auth(), timeout=30
    )
    tally("token", other.status_code)
    missing = httpx.get(
        f"{ctx.server.url}{PREFIX}/file/DCM-0001-0000000000001", headers=ctx.a.auth(), timeout=30
    )
    assert_error(other, 404, "file_not_found")
    assert_error(missing, 404, "file_not_found")
    shown = other.json()["error"]["message"].replace(ctx.b_file, "<id>")
    assert shown == missing.json()["error"]["message"].replace("DCM-0001-0000000000001", "<id>")
    # And the owner still reads it: the refusal is about who asks.
    assert (
        httpx.get(
            f"{ctx.server.url}{PREFIX}/file/{ctx.a_file}", headers=ctx.a.auth(), timeout=30
        ).status_code
        == 200
    )
