"""The signing-key contract tokens are issued and verified with (docs/design.md 2.2).

An implementation keeps parsed RSA keys in memory; nothing here touches disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The key new tokens are signed with, and the ``kid`` their header names."""

    kid: str
    private_key: RSAPrivateKey
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """One signing key as an operator sees it (``berkas keys list``); no key material.

    ``state`` is ``active`` (signs new tokens), ``retiring`` (retired, still verifies the
    tokens it signed until ``verifies_until``) or ``expired`` (verifies nothing; the next
    housekeeping round deletes it).
    """

    kid: str
    state: str
    created_at: datetime
    retired_at: datetime | None
    verifies_until: datetime | None  # None while active


class SigningKeys(Protocol):
    """A key ring: one current signing key plus retired keys still valid for verifying."""

    def current(self) -> SigningKey:
        """The key new tokens are signed with."""
        ...

    def verification_key(self, kid: str) -> RSAPublicKey | None:
        """The public key for ``kid`` if it may still verify tokens, else ``None``."""
        ...

    def jwks(self) -> dict[str, object]:
        """The RFC 7517 JWK Set of every public key still valid for verification."""
        ...

    def refresh(self) -> bool:
        """Pick up keys another process added (e.g. ``berkas keys rotate``).

        Called when a token names an unknown ``kid``; implementations rate-limit it, so
        a flood of forged kids cannot turn into a flood of disk reads. Returns True when
        the ring changed.
        """
        ...


class PrunableKeys(Protocol):
    """What housekeeping needs of a key ring."""

    def prune(self) -> list[str]:
        """Remove retired keys whose every token has expired; returns their kids."""
        ...


class ManagedKeys(SigningKeys, PrunableKeys, Protocol):
    """A key ring an operator manages: rotation, and removal of keys no token needs."""

    def rotate(self) -> str:
        """Make a new current key, retiring the previous one; returns the new ``kid``."""
        ...

    def status(self) -> list[KeyStatus]:
        """Every stored key, the active one first, then the newest retired ones."""
        ...

    def reload(self) -> None:
        """Re-read the keys now (a serving node does this every few seconds, so a key
        rotated anywhere in the fleet signs everywhere soon after)."""
        ...
