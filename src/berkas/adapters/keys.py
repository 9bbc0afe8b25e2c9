"""The RSA key ring tokens are signed with, over a ``KeyStore`` (the database: docs/design.md 5.7).

Every node reads the same keys, so a token one node issued verifies on all of them.
Keys are parsed once per kid when the ring is loaded or reloaded, never per request.
(The one-time import of an older key directory is in ``adapters/key_import.py``.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from berkas.adapters.sealing import SealingError
from berkas.core.errors import Unavailable
from berkas.core.keys import KeyStatus, SigningKey
from berkas.core.ports import Clock

# NIST SP 800-131A Rev. 2, table 2: RSA keys shorter than 2048 bits are disallowed for
# generating digital signatures.
MIN_RSA_BITS = 2048
# A rotation retries when another one committed between its read and its write.
_ROTATE_ATTEMPTS = 5


class KeyRingError(ValueError):
    """The keys are unusable: no current key, a bad key, or (importing a key directory)
    insecure permissions or a corrupt index."""


@dataclass(frozen=True, slots=True)
class _Entry:
    kid: str
    created_at: datetime
    retired_at: datetime | None
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey
    jwk: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Ring:
    entries: tuple[_Entry, ...]  # current first
    current: SigningKey


def _b64url_uint(value: int) -> str:
    # RFC 7518 section 6.3.1: big-endian, minimal length, base64url without padding.
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The RSA members of ``public_key`` as a JWK (RFC 7517, RFC 7518 section 6.3.1)."""
    numbers = public_key.public_numbers()
    return {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url) of ``public_key``.

    RFC 7638 section 3.2: hash the required members only (``e``, ``kty``, ``n`` for
    RSA), in lexicographic order, with no whitespace. The kid thus names the key itself:
    every node derives the same kid from the same key and a swapped file is detected.
    """
    jwk = public_jwk(public_key)
    canonical = json.dumps(
        {"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key's row in a ``KeyStore``: its id and dates (the private key is fetched apart)."""

    kid: str
    created_at: datetime
    retired_at: datetime | None


class KeyStore(Protocol):
    """Where the ring's keys are kept: the database (shared by every node), or memory."""

    def index(self) -> list[StoredKey]:
        """Every key, in no particular order (cheap: no private key is opened)."""
        ...

    def private_pem(self, kid: str) -> bytes | None:
        """The PKCS8 PEM of ``kid``, or None when it is gone."""
        ...

    def add(self, key: StoredKey, pem: bytes, *, replace_current: bool) -> bool:
        """Store ``key``; a current one (``retired_at`` None) retires the current key at
        ``key.created_at`` in the same transaction when ``replace_current``. Returns False,
        storing nothing, when the kid exists or (without ``replace_current``) another key
        is current."""
        ...

    def remove(self, kids: list[str]) -> None:
        """Delete these keys."""
        ...


class KeyRing:
    """A ``ManagedKeys`` over a ``KeyStore``: the current key and retired keys still verifying.

    A retired key keeps verifying until ``retired_at + max_token_lifetime`` (the last
    token it signed has expired by then); ``prune`` then removes it. Private keys are
    parsed once per kid, never per request.
    """

    def __init__(
        self,
        store: KeyStore,
        ring: _Ring,
        *,
        clock: Clock,
        max_token_lifetime: timedelta,
        bits: int,
        refresh_interval: float,
        monotonic: Callable[[], float],
    ) -> None:
        # Use KeyRing.open(); it validates the arguments and loads ``ring``.
        self._store = store
        self._clock = clock
        self._lifetime = max_token_lifetime
        self._bits = bits
        self._refresh_interval = refresh_interval
        self._monotonic = monotonic
        self._last_refresh = monotonic()
        self._refresh_lock = threading.Lock()
        # The ring is swapped whole (one attribute assignment), so readers on other
        # threads see either the old or the new ring, never half of each.
        self._ring = ring

    @classmethod
    def open(
        cls,
        store: KeyStore,
        *,
        clock: Clock,
        max_token_lifetime: timedelta,
        bits: int = MIN_RSA_BITS,
        refresh_interval: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        create: bool = True,
    ) -> KeyRing:
        """Load the ring from ``store``, generating the first key when there is none
        (unless ``create`` is false: then an empty store is a ``KeyRingError``).

        Raises ``ValueError`` for ``bits`` below 2048 and ``KeyRingError`` for a stored
        key that is not a usable RSA key or does not match its kid.
        """
        if bits < MIN_RSA_BITS:
            raise ValueError(
                f"RSA key size {bits} bits is too small; at least {MIN_RSA_BITS} bits are "
                "required (NIST SP 800-131A Rev. 2 disallows shorter keys for signatures)."
            )
        if max_token_lifetime <= timedelta(0):
            raise ValueError("max_token_lifetime must be positive.")
        if not any(key.retired_at is None for key in store.index()):
            if not create:
                raise KeyRingError(
                    "no signing key in the database yet; `berkas serve` or `berkas db "
                    "migrate` creates the first one"
                )
            # Nodes starting together race here; the store keeps exactly one current key
            # and the loser's fresh key is simply not stored.
            kid, pem = _new_key(bits)
            store.add(StoredKey(kid, clock.now(), None), pem, replace_current=False)
        return cls(
            store,
            _load_ring(store, {}),
            clock=clock,
            max_token_lifetime=max_token_lifetime,
            bits=bits,
            refresh_interval=refresh_interval,
            monotonic=monotonic,
        )

    # SigningKeys

    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        return self._ring.current

    def verification_key(self, kid: str) -> rsa.RSAPublicKey | None:
        """The public key for ``kid`` while it may still verify tokens, else ``None``."""
        now = self._clock.now()
        for entry in self._ring.entries:
            if entry.kid == kid:
                return entry.public_key if self._still_verifies(entry, now) else None
        return None

    def jwks(self) -> dict[str, object]:
        """RFC 7517 section 5 JWK Set: the current key first, then retired ones still valid."""
        now = self._clock.now()
        keys: list[object] = [
            {**entry.jwk, "use": "sig", "alg": "RS256", "kid": entry.kid}
            for entry in self._ring.entries
            if self._still_verifies(entry, now)
        ]
        return {"keys": keys}

    def refresh(self) -> bool:
        """Reload from the store at most once per ``refresh_interval`` seconds.

        The server calls this on meeting an unknown kid, so a key another node (or the
        CLI) created is picked up without a restart, while forged kids cannot make every
        request query the database. Returns True when the set of keys changed.
        """
        if not self._refresh_lock.acquire(blocking=False):
            return False  # another thread is reloading right now
        try:
            if self._monotonic() - self._last_refresh < self._refresh_interval:
                return False
            self._last_refresh = self._monotonic()
            before = self._state()
            try:
                self.reload()
            except Unavailable as exc:
                # Mid-request, a database that is down must not take verification down:
                # keep serving the ring we have (/readyz reports the outage).
                logging.getLogger(__name__).warning(
                    "could not reload the signing keys (%s); keeping the keys already loaded",
                    exc.code,
                )
                return False
            except (KeyRingError, SealingError):
                # A broken row: keep serving the ring we have, and say why in full.
                logging.getLogger(__name__).exception(
                    "could not reload the signing keys; keeping the keys already loaded"
                )
                return False
            return self._state() != before
        finally:
            self._refresh_lock.release()

    # Operations (CLI: berkas keys ...; the server's key sync)

    def reload(self) -> None:
        """Re-read the index; open and parse only keys not already in memory."""
        known = {entry.kid: entry for entry in self._ring.entries}
        self._ring = _load_ring(self._store, known)
        self._last_refresh = self._monotonic()

    def rotate(self) -> str:
        """Make a new current key and retire the previous one; returns the new kid.

        The retired key keeps verifying for ``max_token_lifetime`` so tokens it signed
        stay valid until they expire. Every node picks the new key up within seconds.
        """
        kid, pem = _new_key(self._bits)
        for _ in range(_ROTATE_ATTEMPTS):
            # False only when another rotation committed between our read and write:
            # ours is then simply the next one.
            if self._store.add(StoredKey(kid, self._clock.now(), None), pem, replace_current=True):
                break
        else:
            raise KeyRingError("could not rotate: other rotations kept winning; try again")
        self.reload()
        return kid

    def prune(self) -> list[str]:
        """Remove retired keys past ``retired_at + max_token_lifetime``; returns their kids."""
        now = self._clock.now()
        gone = [
            key.kid
            for key in self._store.index()
            if key.retired_at is not None and now >= key.retired_at + self._lifetime
        ]
        if gone:
            self._store.remove(gone)
            self.reload()
        return gone

    def status(self) -> list[KeyStatus]:
        """Every stored key (read now, no private key opened), the active one first, then
        the newest retired ones; an expired key is listed until ``prune`` removes it."""
        now = self._clock.now()
        listed = []
        for key in self._store.index():
            if key.retired_at is None:
                state, until = "active", None
            else:
                until = key.retired_at + self._lifetime
                state = "retiring" if now < until else "expired"
            listed.append(KeyStatus(key.kid, state, key.created_at, key.retired_at, until))
        listed.sort(key=lambda key: key.created_at, reverse=True)
        listed.sort(key=lambda key: key.retired_at is not None)
        return listed

    # Internals

    def _still_verifies(self, entry: _Entry, now: datetime) -> bool:
        return entry.retired_at is None or now < entry.retired_at + self._lifetime

    def _state(self) -> tuple[tuple[str, datetime | None], ...]:
        return tuple((entry.kid, entry.retired_at) for entry in self._ring.entries)


def _load_ring(store: KeyStore, known: dict[str, _Entry]) -> _Ring:
    entries: list[_Entry] = []
    for key in store.index():
        old = known.get(key.kid)
        if old is not None:  # parsed already: keep the key objects, take the dates anew
            entries.append(
                _Entry(
                    key.kid,
                    key.created_at,
                    key.retired_at,
                    old.private_key,
                    old.public_key,
                    old.jwk,
                )
            )
            continue
        try:
            pem = store.private_pem(key.kid)
            if pem is None:  # removed between the two reads (a prune elsewhere)
                continue
            entries.append(key_entry(key, parse_private_key(pem, f"signing key {key.kid}")))
        except (KeyRingError, SealingError):
            if key.retired_at is None:
                raise  # no current key to sign with: refuse, naming the cause
            # One retired key that cannot be opened (sealed under a master key this node
            # lacks) must not stop every other key from verifying.
            logging.getLogger(__name__).exception(
                "retired signing key %s cannot be loaded; tokens it signed are refused",
                key.kid,
            )
    current = [entry for entry in entries if entry.retired_at is None]
    if len(current) != 1:
        raise KeyRingError(
            f"the signing keys must have exactly one current key; they have {len(current)}"
        )
    # Current first, then the newest retired ones.
    entries.sort(key=lambda entry: entry.created_at, reverse=True)
    entries.sort(key=lambda entry: entry.retired_at is not None)
    cur = current[0]
    return _Ring(
        entries=tuple(entries),
        current=SigningKey(kid=cur.kid, private_key=cur.private_key, created_at=cur.created_at),
    )


def key_entry(key: StoredKey, private_key: rsa.RSAPrivateKey) -> _Entry:
    """The ring entry of ``key``; a ``KeyRingError`` when ``private_key`` is not the key
    its kid names."""
    public_key = private_key.public_key()
    if thumbprint(public_key) != key.kid:
        raise KeyRingError(
            f"signing key {key.kid} holds a different key than its kid says (RFC 7638 "
            "thumbprint mismatch); it was replaced or corrupted"
        )
    return _Entry(
        key.kid, key.created_at, key.retired_at, private_key, public_key, public_jwk(public_key)
    )


def parse_private_key(pem: bytes, what: str) -> rsa.RSAPrivateKey:
    """``pem`` as an RSA private key of at least 2048 bits; a ``KeyRingError`` naming
    ``what`` otherwise."""
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyRingError(f"{what} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise KeyRingError(f"{what} is not an RSA key; tokens are RS256 only.")
    if private_key.key_size < MIN_RSA_BITS:
        raise KeyRingError(
            f"{what} is a {private_key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits "
            "are required (NIST SP 800-131A Rev. 2)."
        )
    return private_key


def _new_key(bits: int) -> tuple[str, bytes]:
    # 65537: the public exponent NIST SP 800-56B Rev. 2 (6.2.1) and everyone else use.
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return thumbprint(private_key.public_key()), pem
