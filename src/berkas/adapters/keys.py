"""The RSA key ring on disk: one PKCS8 PEM per key plus a ``keyring.json`` index.

Keys are parsed once when the ring is opened or reloaded, never per request.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from berkas.adapters.durable import atomic_write, fsync_dir
from berkas.core.keys import SigningKey
from berkas.core.ports import Clock

# NIST SP 800-131A Rev. 2, table 2: RSA keys shorter than 2048 bits are disallowed for
# generating digital signatures.
MIN_RSA_BITS = 2048
INDEX_NAME = "keyring.json"
_LOCK_NAME = ".lock"
_INDEX_VERSION = 1
# A kid is an RFC 7638 thumbprint: base64url (no padding) of a SHA-256 digest, 43
# characters. It names a file, so nothing else is ever accepted from the index.
_KID = re.compile(r"[A-Za-z0-9_-]{43}")


class KeyRingError(ValueError):
    """The key directory is unusable: insecure permissions, a corrupt index, a bad key."""


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


class KeyRing:
    """A file-backed ``SigningKeys``: the current key and retired keys still verifying.

    A retired key keeps verifying until ``retired_at + max_token_lifetime`` (the last
    token it signed has expired by then); ``prune`` then removes it from disk.
    """

    def __init__(
        self,
        directory: Path,
        ring: _Ring,
        *,
        clock: Clock,
        max_token_lifetime: timedelta,
        bits: int,
        refresh_interval: float,
        monotonic: Callable[[], float],
    ) -> None:
        # Use KeyRing.open(); it validates the arguments and loads ``ring`` from disk.
        self._directory = directory
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
        directory: Path,
        *,
        clock: Clock,
        max_token_lifetime: timedelta,
        bits: int = MIN_RSA_BITS,
        refresh_interval: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        create: bool = True,
    ) -> KeyRing:
        """Load the ring in ``directory``, generating the first key when there is none
        (unless ``create`` is false: then a missing ring is a ``KeyRingError``).

        Raises ``ValueError`` for ``bits`` below 2048 and ``KeyRingError`` for a key file
        or directory others can access, a corrupt index or a key that does not match it.
        """
        if bits < MIN_RSA_BITS:
            raise ValueError(
                f"RSA key size {bits} bits is too small; at least {MIN_RSA_BITS} bits are "
                "required (NIST SP 800-131A Rev. 2 disallows shorter keys for signatures)."
            )
        if max_token_lifetime <= timedelta(0):
            raise ValueError("max_token_lifetime must be positive.")
        if not create and not (directory / INDEX_NAME).exists():
            raise KeyRingError(
                f"no signing keys in {directory}; `berkas serve` or `berkas db migrate` "
                "creates them"
            )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private(directory, "key directory", "700")
        if not (directory / INDEX_NAME).exists():
            with _locked(directory):
                # Another process may have created the ring while we waited for the lock.
                if not (directory / INDEX_NAME).exists():
                    kid = _write_new_key(directory, bits)
                    _write_index(directory, [(kid, clock.now(), None)])
        return cls(
            directory,
            _load_ring(directory, {}),
            clock=clock,
            max_token_lifetime=max_token_lifetime,
            bits=bits,
            refresh_interval=refresh_interval,
            monotonic=monotonic,
        )

    @property
    def directory(self) -> Path:
        """Where the PEM files and the index live."""
        return self._directory

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
        """Reload from disk at most once per ``refresh_interval`` seconds.

        The server calls this on meeting an unknown kid, so a rotation done by the CLI in
        another process is picked up without a restart, while forged kids cannot make
        every request read the disk. Returns True when the set of keys changed.
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
            except (KeyRingError, OSError):
                # Mid-request, a broken directory (an operator editing it by hand) must
                # not take verification down: keep serving the ring we have, say why.
                logging.getLogger(__name__).exception(
                    "could not reload the key ring in %s; keeping the keys already loaded",
                    self._directory,
                )
                return False
            return self._state() != before
        finally:
            self._refresh_lock.release()

    # Operations (CLI: berkas keys ...)

    def reload(self) -> None:
        """Re-read the index; parse only PEM files of keys not already in memory."""
        known = {entry.kid: entry for entry in self._ring.entries}
        self._ring = _load_ring(self._directory, known)
        self._last_refresh = self._monotonic()

    def rotate(self) -> str:
        """Make a new current key and retire the previous one; returns the new kid.

        The retired key keeps verifying for ``max_token_lifetime`` so tokens it signed
        stay valid until they expire.
        """
        with _locked(self._directory):
            self.reload()  # another process may have rotated since we loaded
            now = self._clock.now()
            kid = _write_new_key(self._directory, self._bits)
            rows: list[tuple[str, datetime, datetime | None]] = [
                (entry.kid, entry.created_at, entry.retired_at or now)
                for entry in self._ring.entries
            ]
            rows.insert(0, (kid, now, None))
            # The index rename is the commit point: the PEM is already durable on disk.
            _write_index(self._directory, rows)
            self.reload()
        return kid

    def prune(self) -> list[str]:
        """Remove retired keys past ``retired_at + max_token_lifetime``; returns their kids."""
        with _locked(self._directory):
            self.reload()
            now = self._clock.now()
            gone = [
                entry.kid for entry in self._ring.entries if not self._still_verifies(entry, now)
            ]
            if not gone:
                return []
            _write_index(
                self._directory,
                [
                    (entry.kid, entry.created_at, entry.retired_at)
                    for entry in self._ring.entries
                    if entry.kid not in gone
                ],
            )
            # Index first, then files: a crash in between leaves an orphan PEM, never an
            # index naming a missing file.
            for kid in gone:
                (self._directory / f"{kid}.pem").unlink(missing_ok=True)
            fsync_dir(self._directory)
            self.reload()
        return gone

    # Internals

    def _still_verifies(self, entry: _Entry, now: datetime) -> bool:
        return entry.retired_at is None or now < entry.retired_at + self._lifetime

    def _state(self) -> tuple[tuple[str, datetime | None], ...]:
        return tuple((entry.kid, entry.retired_at) for entry in self._ring.entries)


def _load_ring(directory: Path, known: dict[str, _Entry]) -> _Ring:
    entries: list[_Entry] = []
    for kid, created_at, retired_at in _read_index(directory):
        old = known.get(kid)
        if old is None:
            entries.append(_load_entry(directory, kid, created_at, retired_at))
        else:  # parsed already: keep the key objects, take the dates from the index
            entries.append(
                _Entry(kid, created_at, retired_at, old.private_key, old.public_key, old.jwk)
            )
    current = [entry for entry in entries if entry.retired_at is None]
    if len(current) != 1:
        raise KeyRingError(
            f"{directory / INDEX_NAME} must have exactly one key without retired_at (the "
            f"current key); it has {len(current)}."
        )
    entries.sort(key=lambda entry: entry.retired_at is not None)  # stable: current first
    cur = current[0]
    return _Ring(
        entries=tuple(entries),
        current=SigningKey(kid=cur.kid, private_key=cur.private_key, created_at=cur.created_at),
    )


def _read_index(directory: Path) -> list[tuple[str, datetime, datetime | None]]:
    path = directory / INDEX_NAME
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise KeyRingError(f"{path} is missing; the key ring cannot be loaded.") from None
    except ValueError as exc:
        raise KeyRingError(f"{path} is not valid JSON: {exc}.") from exc
    if not isinstance(document, dict) or document.get("version") != _INDEX_VERSION:
        raise KeyRingError(f"{path} is not a version {_INDEX_VERSION} berkas key index.")
    raw_keys = document.get("keys")
    if not isinstance(raw_keys, list):
        raise KeyRingError(f'{path}: "keys" must be a list.')
    rows: list[tuple[str, datetime, datetime | None]] = []
    for position, raw in enumerate(raw_keys):
        where = f"{path}: keys[{position}]"
        if not isinstance(raw, dict):
            raise KeyRingError(f"{where} must be an object.")
        kid = raw.get("kid")
        if not isinstance(kid, str) or not _KID.fullmatch(kid):
            raise KeyRingError(f"{where}.kid must be a 43-character RFC 7638 thumbprint.")
        created_at = _parse_time(raw.get("created_at"), f"{where}.created_at")
        retired_raw = raw.get("retired_at")
        retired_at = (
            None if retired_raw is None else _parse_time(retired_raw, f"{where}.retired_at")
        )
        rows.append((kid, created_at, retired_at))
    return rows


def _load_entry(
    directory: Path, kid: str, created_at: datetime, retired_at: datetime | None
) -> _Entry:
    path = directory / f"{kid}.pem"
    _check_private(path, "key file", "600")
    try:
        private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyRingError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise KeyRingError(f"{path} is not an RSA key; tokens are RS256 only.")
    if private_key.key_size < MIN_RSA_BITS:
        raise KeyRingError(
            f"{path} is a {private_key.key_size}-bit RSA key; at least {MIN_RSA_BITS} bits "
            "are required (NIST SP 800-131A Rev. 2)."
        )
    public_key = private_key.public_key()
    if thumbprint(public_key) != kid:
        raise KeyRingError(
            f"{path} holds a different key than its name says (RFC 7638 thumbprint "
            "mismatch); the file was replaced or corrupted."
        )
    return _Entry(kid, created_at, retired_at, private_key, public_key, public_jwk(public_key))


def _write_new_key(directory: Path, bits: int) -> str:
    # 65537: the public exponent NIST SP 800-56B Rev. 2 (6.2.1) and everyone else use.
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    kid = thumbprint(private_key.public_key())
    pem = private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    atomic_write(directory / f"{kid}.pem", pem)
    return kid


def _write_index(directory: Path, rows: list[tuple[str, datetime, datetime | None]]) -> None:
    document = {
        "version": _INDEX_VERSION,
        "keys": [
            {
                "kid": kid,
                "created_at": created_at.isoformat(),
                "retired_at": None if retired_at is None else retired_at.isoformat(),
            }
            for kid, created_at, retired_at in rows
        ],
    }
    atomic_write(directory / INDEX_NAME, json.dumps(document, indent=2).encode())


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    # Writers in different processes (server start, `berkas keys rotate`) serialise on an
    # flock; readers need none because every file is replaced whole by rename.
    fd = os.open(directory / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _parse_time(value: object, where: str) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    raise KeyRingError(f"{where} must be an ISO 8601 timestamp with a UTC offset.")


def _check_private(path: Path, what: str, mode: str) -> None:
    # Like ssh with a private key, refuse rather than silently chmod: a key others could
    # read may already be copied, so the operator must know (and should rotate). Anyone
    # holding it can mint a token for every client.
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyRingError(f"{path} is listed in {INDEX_NAME} but missing.") from None
    if st.st_mode & 0o077:
        raise KeyRingError(
            f"{what} {path} is accessible by group or others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); berkas refuses it because whoever can read or "
            f"replace it can forge tokens. Run `chmod {mode} {path}`, and rotate the key "
            "(`berkas keys rotate`) if others may have copied it."
        )
