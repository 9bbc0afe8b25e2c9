"""Bearer tokens (docs/design.md 2.2): issue DOKU's RS256 JWT for a client and verify it on use.

Keys come parsed from ``SigningKeys``; nothing here touches disk.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from berkas.core.codes import Code
from berkas.core.errors import AuthenticationFailed, InvalidRequest
from berkas.core.keys import SigningKeys
from berkas.core.models import Client
from berkas.core.ports import CachedClientRepository, ClientRepository, Clock
from berkas.core.wire import quoted

# The one algorithm we sign with and the only one we accept. Choosing it here, never
# from the token's own header, is what defeats algorithm confusion: "alg": "none", or
# HS256 keyed with our public key (CVE-2015-9235; PyJWT's own CVE-2022-29217; RFC 8725
# section 3.1).
ALGORITHM = "RS256"
# Clock skew tolerated between the node that issued a token and the one verifying it
# (RFC 7519 section 4.1.4 allows "some small leeway, usually no more than a few minutes").
LEEWAY_SECONDS = 30
# A berkas token is well under 1 KiB; refuse to base64-decode and JSON-parse megabytes.
MAX_TOKEN_CHARS = 8192
# DOKU's claim values, exactly as its token example names them.
SUBJECT = "payload"
CLIENT_CLAIM = "businessServiceClientId"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A signed token and the moment it stops being accepted."""

    token: str
    expires_at: datetime


class TokenService:
    """Issues DOKU-shaped bearer tokens and verifies them back to an enabled client."""

    def __init__(
        self,
        keys: SigningKeys,
        clients: ClientRepository,
        clock: Clock,
        *,
        default_minutes: int = 5,
        max_minutes: int = 1440,
    ) -> None:
        if not 1 <= default_minutes <= max_minutes:
            raise ValueError(
                f"default token lifetime {default_minutes} minutes must be between 1 and "
                f"the maximum of {max_minutes} minutes."
            )
        self._keys = keys
        self._clients = clients
        self._clock = clock
        self._default_minutes = default_minutes
        self._max_minutes = max_minutes

    def issue(self, client_id: str, valid_time: object) -> IssuedToken:
        """Sign a token for ``client_id`` valid for ``valid_time`` minutes (DOKU's field).

        ``valid_time`` is the value straight from the request JSON: a string of digits,
        a JSON integer, or ``None`` for the default. Raises ``InvalidRequest``
        (``invalid_valid_time``) or ``AuthenticationFailed`` for an unknown or disabled
        client.
        """
        # Who is asking comes before what they ask.
        return self.issue_to(self._enabled_client(client_id), valid_time)

    def issue_to(self, client: Client, valid_time: object) -> IssuedToken:
        """As ``issue``, for a client this request has just authenticated (read and
        checked enabled by ``RequestVerifier.authenticate``): no second lookup."""
        if not client.enabled:
            raise AuthenticationFailed(
                f"client {quoted(client.client_id)} is disabled.", code=Code.CLIENT_DISABLED
            )
        client_id = client.client_id
        minutes = self.parse_valid_time(valid_time)
        # Pick up a `berkas keys rotate` done by another process (rate-limited, cheap), so
        # a running server signs with the new key instead of the one being retired.
        self._keys.refresh()
        key = self._keys.current()
        issued_at = int(self._clock.now().timestamp())
        expires = issued_at + minutes * 60
        claims: dict[str, Any] = {
            "sub": SUBJECT,
            "exp": expires,
            "iat": issued_at,
            "user": {CLIENT_CLAIM: client_id},
            # A unique id per token (docs/design.md 2.2 allows a jti), prefixed with the client's
            # token generation: a disable or a secret rotation bumps it, and every token
            # minted before then is refused (verify).
            "jti": f"{client.token_generation}.{uuid.uuid4().hex}",
        }
        token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
        return IssuedToken(token=token, expires_at=datetime.fromtimestamp(expires, UTC))

    def parse_valid_time(self, value: object) -> int:
        """Minutes from DOKU's ``valid_time``: default when absent, else 1..max minutes."""
        if value is None:
            return self._default_minutes
        minutes: int | None = None
        if isinstance(value, str) and value.isascii() and value.isdigit():
            # Bounded before int(): a 5,000-digit string must not cost a big-int parse.
            digits = value.lstrip("0") or "0"
            minutes = int(digits) if len(digits) <= 12 else self._max_minutes + 1
        elif isinstance(value, int) and not isinstance(value, bool):
            # DOKU documents a string ("360"), but many JSON encoders emit a number for a
            # numeric field; 360 means exactly what "360" means, so refusing it would only
            # break integrations. Booleans are ints to Python and are refused.
            minutes = value
        accepted = (
            f"a whole number of minutes from 1 to {self._max_minutes}, sent as a string of "
            'digits such as "360"'
        )
        if minutes is None or minutes < 1:
            raise InvalidRequest(
                f"valid_time must be {accepted}; got {quoted(value)}.",
                code=Code.INVALID_VALID_TIME,
            )
        if minutes > self._max_minutes:
            raise InvalidRequest(
                f"valid_time {quoted(value)} is above the maximum of {self._max_minutes} "
                f"minutes; send {accepted}.",
                code=Code.INVALID_VALID_TIME,
            )
        return minutes

    def verify(self, token: str) -> Client:
        """The enabled client a bearer token was issued to; ``AuthenticationFailed`` if not.

        Accepts RS256 only, signed by a key of ours named by ``kid``, unexpired, not
        issued (``iat``) or valid (``nbf``) only in the future, living no longer than the
        maximum ``valid_time``, with DOKU's ``sub`` and a client that still exists and is
        enabled.
        """
        _check_shape(token)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _malformed("it is not a JWT (header.payload.signature)") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise AuthenticationFailed(
                f"token algorithm {quoted(alg)} is not accepted; tokens must be {ALGORITHM}.",
                code=Code.TOKEN_ALGORITHM_NOT_ALLOWED,
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _malformed('its header has no "kid" naming the signing key')
        # Keys named by the token itself (jwk, jku, x5u headers) are never used: only
        # keys in our own ring verify (RFC 8725 section 3.10).
        public_key = self._keys.verification_key(kid)
        if public_key is None and self._keys.refresh():
            public_key = self._keys.verification_key(kid)  # rotated in by another process
        if public_key is None:
            raise AuthenticationFailed(
                f"token key {quoted(kid)} is not one of this server's signing keys "
                "(see /.well-known/jwks.json); request a new token.",
                code=Code.TOKEN_KEY_UNKNOWN,
            )
        try:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=[ALGORITHM],
                # Time claims are checked below against the injected clock, the same one
                # that stamped them, rather than PyJWT's own reading of the system time.
                options={
                    "require": ["exp", "iat", "sub"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise AuthenticationFailed(
                "token signature does not verify; it was altered or not issued here.",
                code=Code.TOKEN_SIGNATURE_INVALID,
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise _malformed(f'it lacks the "{exc.claim}" claim') from None
        except jwt.InvalidTokenError as exc:
            raise _malformed(str(exc)) from None
        self._check_times(claims)
        if claims["sub"] != SUBJECT:
            raise _malformed(f'its "sub" is {quoted(claims["sub"])}, not "{SUBJECT}"')
        client_id = client_claim(claims)
        if client_id is None:
            raise _malformed(f'it has no "user.{CLIENT_CLAIM}" claim')
        generation = _generation(claims.get("jti"))
        client = self._enabled_client(client_id, generation)
        if generation != client.token_generation:
            # Minted before a `berkas clients disable` or `rotate-secret`: whoever held
            # the old secret, or the disabled client, keeps nothing that still works
            # (OWASP ASVS 4.0.3 V3.3.3 and V3.3.4: credential changes end sessions).
            raise AuthenticationFailed(
                f"token was issued to client {quoted(client_id)} before its secret was "
                "rotated or it was disabled; request a new one from POST /token.",
                code=Code.TOKEN_REVOKED,
            )
        return client

    def _check_times(self, claims: dict[str, Any]) -> None:
        # Every time claim is a NumericDate (RFC 7519 section 2); we issue whole seconds.
        times: dict[str, int] = {}
        for name in ("exp", "iat", "nbf"):
            if name not in claims:
                continue  # exp and iat are required by jwt.decode above; nbf is optional
            value = claims[name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise _malformed(f'its "{name}" is not a whole number of seconds')
            times[name] = value
        expires, issued_at = times["exp"], times["iat"]
        now = self._clock.now().timestamp()
        # RFC 7519 section 4.1.4: not accepted on or after exp (with a small leeway).
        if now >= expires + LEEWAY_SECONDS:
            expired_at = datetime.fromtimestamp(expires, UTC).isoformat()
            raise AuthenticationFailed(
                f"token expired at {expired_at}; request a new one from POST /token.",
                code=Code.TOKEN_EXPIRED,
            )
        # RFC 7519 section 4.1.5: not accepted before nbf. We never set nbf, but a token
        # that names one is held to it. An iat in the future is refused the same way:
        # only a key of ours could have signed it, so it comes from a clock far off, or
        # from someone holding our key minting tokens for later (RFC 8725 section 3.10
        # asks verifiers to check every claim they rely on).
        for name in ("nbf", "iat"):
            if name in times and times[name] > now + LEEWAY_SECONDS:
                raise AuthenticationFailed(
                    f'token is not valid yet ("{name}" is in the future); the clocks of the '
                    "issuing and the verifying server disagree by more than "
                    f"{LEEWAY_SECONDS} seconds, or it was not issued by POST /token.",
                    code=Code.TOKEN_NOT_YET_VALID,
                )
        # A token lives at most as long as POST /token would grant (valid_time <= the
        # maximum). A signature alone does not bound it: a leaked signing key, or an
        # issuer bug, must not yield a token good for ten years. Both the stated lifetime
        # (exp - iat) and what is left of it (exp - now) are bounded, with the leeway.
        longest = self._max_minutes * 60 + LEEWAY_SECONDS
        if expires - issued_at > longest or expires - now > longest:
            raise AuthenticationFailed(
                f"token lifetime is longer than the {self._max_minutes} minutes this server "
                "issues tokens for; request a new one from POST /token.",
                code=Code.TOKEN_LIFETIME_TOO_LONG,
            )
        if expires <= issued_at:
            raise _malformed('its "exp" is not after its "iat"')

    def _enabled_client(self, client_id: str, generation: int | None = None) -> Client:
        """The enabled client; ``generation``: the token's, when verifying one."""
        if isinstance(self._clients, CachedClientRepository):
            client, remembered = self._clients.remembered(client_id)
            if (
                remembered
                and client is not None
                and (
                    not client.enabled
                    or (generation is not None and generation != client.token_generation)
                )
            ):
                # The remembered row may predate an enable or a rotation elsewhere (after
                # which another node minted this token): what a change makes valid is
                # accepted at once, only what it ends waits for the bound (docs/design.md 2.1).
                client = self._clients.fresh(client_id)
        else:
            client = self._clients.get(client_id)
        if client is None:
            raise AuthenticationFailed(
                f"client {quoted(client_id)} is not registered here.", code=Code.CLIENT_UNKNOWN
            )
        if not client.enabled:
            # A disable reaches tokens already issued too, within the client cache bound
            # (docs/design.md 2.1).
            raise AuthenticationFailed(
                f"client {quoted(client_id)} is disabled; its tokens are no longer accepted.",
                code=Code.CLIENT_DISABLED,
            )
        return client


# RFC 7515 section 2 and 7.1: each part of a compact JWS is base64url "with all trailing
# '=' characters omitted" and no other characters; RFC 4648 section 3.5 lets a decoder
# refuse non-canonical encodings (unused bits set). Refusing every other spelling gives a
# token exactly one: PyJWT 2.13 accepted junk after the signature (GHSA-hxm8-2xgr-2p9m,
# a raw-token revocation list bypassed) and later releases still accept "=" padding.
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def _check_shape(token: str) -> None:
    if not token or token.isspace():
        raise AuthenticationFailed(
            "Authorization must carry a bearer token from POST /token; it was empty.",
            code=Code.TOKEN_MISSING,
        )
    if len(token) > MAX_TOKEN_CHARS:
        raise _malformed(f"it is {len(token)} characters long, over {MAX_TOKEN_CHARS}")
    if not _canonical(token):
        raise _malformed("it is not three unpadded base64url parts (header.payload.signature)")


def _canonical(token: str) -> bool:
    parts = token.split(".")
    if len(parts) != 3:
        return False
    for part in parts:
        if not _BASE64URL.fullmatch(part) or len(part) % 4 == 1:
            return False
        decoded = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode("ascii") != part:
            return False
    return True


def _generation(jti: object) -> int | None:
    """The client token generation a berkas ``jti`` starts with; a token of a release
    before generations (a bare hex jti, or none) counts as generation 0. None when
    unreadable (only a key of ours could have signed it; it is refused all the same)."""
    if jti is None:
        return 0
    if not isinstance(jti, str):
        return None
    head, dot, _ = jti.partition(".")
    if not dot:
        return 0
    return int(head) if head.isascii() and head.isdigit() and len(head) <= 9 else None


def _malformed(problem: str) -> AuthenticationFailed:
    return AuthenticationFailed(
        f"bearer token is malformed: {problem}; use the token POST /token returned.",
        code=Code.TOKEN_MALFORMED,
    )


def client_claim(claims: object) -> str | None:
    """The Client-Id a token's claims name (DOKU's ``user.businessServiceClientId``);
    None when they name none."""
    user = claims.get("user") if isinstance(claims, dict) else None
    client_id = user.get(CLIENT_CLAIM) if isinstance(user, dict) else None
    return client_id if isinstance(client_id, str) and client_id else None


def claimed_client(token: str) -> str | None:
    """The Client-Id a token names, read WITHOUT verifying anything: for the access line
    of a refused request only, where it is marked as claimed (``observe.note_claimed``)."""
    if len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    return client_claim(claims)
