"""Secrets sealed at rest under the master key: AES-256-GCM with a key id (docs/design.md 5.7).

Partner secret keys, the RSA signing keys and the link secret live in the database, so
every node of a fleet shares them; a dump of that database (``pg_dump``, a backup, a
copied SQLite file) must not hand them over. Each value is sealed as::

    sealed:v1:<master key id>:<base64url(nonce || ciphertext || tag)>

- AES-256-GCM (NIST SP 800-38D) from ``cryptography``: confidentiality and integrity.
- A fresh 96-bit random nonce per seal. SP 800-38D section 8.3 bounds random nonces to
  2**32 seals per key; berkas seals a handful of values per client, far below that.
- The associated data binds a value to where it lives (``client:<id>:secret_key``,
  ``signing-key:<kid>``, ...): a sealed value copied into another row fails to open
  instead of becoming, say, another client's secret.
- The key id names the master key (an HMAC of it, never the key itself), so the master
  key can be rotated: old keys stay readable while ``berkas secrets rekey`` reseals
  everything under the new one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from berkas.adapters.durable import atomic_write
from berkas.core.codes import Code
from berkas.core.errors import BerkasError
from berkas.core.models import DataKeyBinding

log = logging.getLogger(__name__)

PREFIX = "sealed:"
_VERSION = "v1"
_NONCE_BYTES = 12
MASTER_KEY_BYTES = 32


class SealingError(ValueError):
    """A sealed value cannot be opened (unknown master key, tampered, wrong place), or a
    master key is malformed. The message names the cause, never a secret."""


@dataclass(frozen=True, slots=True)
class MasterKey:
    """One 256-bit master key and its public id."""

    key: bytes

    @property
    def kid(self) -> str:
        # An id that names the key without revealing it: HMAC-SHA256 of a fixed label
        # keyed by the master key, truncated (80 bits tells a handful of keys apart).
        mac = hmac.new(self.key, b"berkas master key id", hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:10]).rstrip(b"=").decode("ascii")

    def __repr__(self) -> str:  # never print the key
        return f"MasterKey(kid={self.kid!r})"


def parse_master_key(text: str, *, where: str) -> MasterKey:
    """A master key from its base64 text (standard or URL-safe alphabet, padding optional).

    Raises ``SealingError`` naming ``where`` unless it decodes to exactly 32 bytes.
    """
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != MASTER_KEY_BYTES:
        raise SealingError(
            f"{where}: a master key is 32 random bytes in base64 (e.g. the output of "
            "`openssl rand -base64 32`)"
        )
    return MasterKey(raw)


def new_master_key_text() -> str:
    """A fresh master key from the OS CSPRNG, as base64 text."""
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode("ascii")


def read_key_file(path: Path) -> list[MasterKey]:
    """The keys in a master key file: one base64 key per line, the current one first,
    then older keys still needed to open what they sealed. ``#`` lines are comments.

    Refuses a file others can read (like ssh with a private key: it may already be
    copied, so the operator must know).
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        raise SealingError(f"master key file {path} does not exist") from None
    except OSError as exc:
        raise SealingError(f"master key file {path} cannot be read: {exc.strerror}") from None
    if mode & 0o077 and not _systemd_credential(path):
        raise SealingError(
            f"master key file {path} is accessible by group or others (mode "
            f"{mode & 0o777:04o}); whoever reads it can open every partner secret and "
            f"signing key in the database. Run `chmod 600 {path}`."
        )
    lines = [line.strip() for line in text.splitlines()]
    keys = [
        parse_master_key(line, where=f"{path} line {number}")
        for number, line in enumerate(lines, start=1)
        if line and not line.startswith("#")
    ]
    if not keys:
        raise SealingError(f"master key file {path} holds no key")
    return keys


def _systemd_credential(path: Path) -> bool:
    """Whether ``path`` is a credential systemd handed this service (LoadCredential=).

    Such a copy is readable by the service's user alone whatever its mode bits say:
    systemd 255 and later keep it root's 0400 on tmpfs and grant the service's uid read by
    a POSIX ACL, whose mask stat shows as group bits (0440). Access to it is systemd's to
    enforce (systemd.exec(5), "Credentials"; deploy/berkas.service).
    """
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return False
    try:
        return path.resolve().parent == Path(directory).resolve()
    except OSError:
        return False


def create_key_file(path: Path) -> bool:
    """Write a new master key file (0600) unless one exists (first writer wins); True
    when this call created it."""
    body = (
        "# berkas master key (base64, 32 bytes). It opens every partner secret and signing\n"
        "# key in the database: back it up apart from the database, never beside it.\n"
        "# To rotate: put a new key on the first line, keep the old one below it, run\n"
        "# `berkas secrets rekey`, then remove the old line.\n"
        f"{new_master_key_text()}\n"
    )
    try:
        atomic_write(path, body.encode("ascii"), exclusive=True)
    except FileExistsError:
        return False
    return True


class Sealer:
    """Seals with the current master key; opens with it or any older key it was given.

    ``source`` says where the keys came from, for error messages.
    """

    def __init__(self, current: MasterKey, older: Iterable[MasterKey] = (), *, source: str) -> None:
        self.current = current
        self.source = source
        self._by_kid = {key.kid: key for key in (*older, current)}
        self._aead = {kid: AESGCM(key.key) for kid, key in self._by_kid.items()}

    @property
    def kids(self) -> tuple[str, ...]:
        """The ids of every master key this sealer holds, the current one first."""
        return (self.current.kid, *(kid for kid in self._by_kid if kid != self.current.kid))

    def seal(self, plaintext: bytes, context: str) -> str:
        """``plaintext`` sealed under the current key, bound to ``context``."""
        kid = self.current.kid
        nonce = os.urandom(_NONCE_BYTES)
        box = self._aead[kid].encrypt(nonce, plaintext, _aad(kid, context))
        body = base64.urlsafe_b64encode(nonce + box).rstrip(b"=").decode("ascii")
        return f"{PREFIX}{_VERSION}:{kid}:{body}"

    def open(self, sealed: str, context: str) -> bytes:
        """The plaintext of ``sealed``; ``SealingError`` when it cannot be opened here."""
        kid, body = _split(sealed, context)
        aead = self._aead.get(kid)
        if aead is None:
            raise SealingError(
                f"{context} is sealed with master key {kid}, which this node does not have "
                f"(it has {', '.join(self.kids)} from {self.source}). Every node of a fleet "
                "needs the same BERKAS_MASTER_KEY; after a master key change keep the old "
                "key (BERKAS_MASTER_KEY_PREVIOUS, or a later line of the key file) until "
                "`berkas secrets rekey` has run."
            )
        padded = body + "=" * (-len(body) % 4)
        try:
            raw = base64.urlsafe_b64decode(padded)
            return aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(kid, context))
        except (binascii.Error, ValueError, InvalidTag):
            raise SealingError(
                f"{context} fails its integrity check under master key {kid}: the stored "
                "value was altered or copied from another row"
            ) from None

    def needs_reseal(self, value: str) -> bool:
        """True for a plaintext value or one sealed under an older master key."""
        return not value.startswith(f"{PREFIX}{_VERSION}:{self.current.kid}:")


def clear_value_message(column: str, row: str) -> str:
    """Why a clear value in a sealed column is refused, naming the column and the row."""
    return (
        f"{column} of {row!r} is stored in clear and is refused: berkas seals every value "
        "it writes there, so this one was written into the database without the master "
        "key. Replace it with a berkas command (e.g. `berkas clients rotate-secret`, "
        "`berkas keys rotate`) and find out who could write to the database"
    )


def client_context(client_id: str) -> str:
    """What a client's sealed secret is bound to (its row)."""
    return f"client:{client_id}:secret_key"


def previous_client_context(client_id: str) -> str:
    """What a client's sealed previous secret is bound to: its row and its column, so the
    two sealed values of one row cannot be swapped (a replaced secret made current again,
    or kept past its grace)."""
    return f"client:{client_id}:previous_secret_key"


def replay_context(client_id: str, request_id: str, status: int | None) -> str:
    """What a sealed replay answer is bound to: the client, its Request-Id, the status."""
    return "replay:" + json.dumps([client_id, request_id, status], separators=(",", ":"))


def key_context(kid: str) -> str:
    """What a sealed signing key is bound to (its kid)."""
    return f"signing-key:{kid}"


def secret_context(name: str) -> str:
    """What a sealed service secret is bound to (its name)."""
    return f"service-secret:{name}"


def data_key_context(binding: DataKeyBinding) -> str:
    """Where a document's data key lives and what it belongs to: the file's id, owner,
    object key and link generation (JSON, so no value can run into the next)."""
    fields = [binding.file_id, binding.client_id, binding.key, binding.link_generation]
    return "file-data-key:" + json.dumps(fields, separators=(",", ":"))


def legacy_data_key_context(file_id: str) -> str:
    """What 0007 and older bound a data key to: the file id alone (rebound at start)."""
    return f"file:{file_id}:data_key"


class SealedDataKeys:
    """``core.ports.DataKeys`` under the master key: a data key is sealed like every other
    secret the database holds, so ``berkas secrets rekey`` reseals it and a dump of the
    database without the master key opens no document."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def wrap(self, key: bytes, binding: DataKeyBinding) -> str:
        return self._sealer.seal(key, data_key_context(binding))

    def unwrap(self, wrapped: str, binding: DataKeyBinding) -> bytes:
        try:
            return self._sealer.open(wrapped, data_key_context(binding))
        except SealingError as exc:
            # The cause (master key ids, the key file's path) is for the operator's log
            # only: the answer goes to whoever holds a link, who learns nothing about how
            # the keys are kept (OWASP Error Handling Cheat Sheet: no internals in errors).
            log.error("the data key of stored file %s cannot be opened: %s", binding.file_id, exc)
            raise BerkasError(
                f"the stored file {binding.file_id} cannot be opened on this node; "
                "nothing was served.",
                code=Code.FILE_UNREADABLE,
            ) from None


def is_sealed(value: str) -> bool:
    """True when ``value`` is in the sealed format (plaintext of older versions is not)."""
    return value.startswith(PREFIX)


def sealed_kid(value: str) -> str | None:
    """The master key id ``value`` is sealed under; None for a plaintext value."""
    if not is_sealed(value):
        return None
    parts = value.split(":", 3)
    return parts[2] if len(parts) == 4 else None


def _split(sealed: str, context: str) -> tuple[str, str]:
    parts = sealed.split(":", 3)
    if len(parts) != 4 or f"{parts[0]}:" != PREFIX or parts[1] != _VERSION:
        raise SealingError(f"{context} is not a sealed value berkas can read")
    return parts[2], parts[3]


def _aad(kid: str, context: str) -> bytes:
    return f"berkas:{_VERSION}:{kid}:{context}".encode()
