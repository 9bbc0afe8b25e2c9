"""Partner clients: create, list, label, disable, rotate secrets (``berkas clients``)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest, NotFound
from berkas.core.models import Client
from berkas.core.ports import ClientRepository, Clock
from berkas.core.wire import spoken

# The id ends up in object keys (docs/design.md 2.4 layout), so it is restricted to characters
# that are safe in a path segment; DOKU's look like BRN-0001-10791114622547.
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_LABEL = 100
# How long a replaced secret may keep verifying at most. A grace is a second valid secret,
# so it stays short next to the secret's own cryptoperiod (NIST SP 800-57 Part 1 Rev. 5,
# section 5.3, Cryptoperiods: bound how long a key may be used), and the old secret is
# revoked once the partner has switched (OWASP Secrets Management Cheat Sheet, "Secret
# Lifecycle": rotation, then revocation of the old value).
MAX_GRACE = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class SecretRotation:
    """What ``rotate_secret`` did: the client with its new secret (shown once), until when
    the replaced secret still verifies (None: not at all), and the grace of an older
    previous secret that this rotation cut short (None when there was none)."""

    client: Client
    previous_valid_until: datetime | None
    dropped_previous_until: datetime | None


class ClientService:
    """Creates partner credentials with strong random secrets."""

    def __init__(
        self, clients: ClientRepository, clock: Clock, *, grace: timedelta = timedelta(hours=24)
    ) -> None:
        self._clients = clients
        self._clock = clock
        self.grace = grace  # of rotate_secret when none is given (BERKAS_SECRET_GRACE_HOURS)

    def create(self, client_id: str | None = None, *, label: str | None = None) -> Client:
        """A new enabled client; a DOKU-style ``BRN-`` id is generated when none is given."""
        label = _checked_label(label)
        if client_id is None:
            client_id = new_client_id()
        elif not CLIENT_ID_PATTERN.fullmatch(client_id):
            raise InvalidRequest(
                f"client id {client_id!r} must be 1-64 letters, digits, '-' or '_' "
                "(e.g. BRN-0001-10791114622547).",
                code=Code.CLIENT_ID_INVALID,
            )
        client = Client(
            client_id=client_id,
            secret_key=_new_secret(),
            enabled=True,
            created_at=self._clock.now(),
            label=label,
        )
        self._clients.add(client)
        return client

    def list(self) -> list[Client]:
        return self._clients.list()

    def set_enabled(self, client_id: str, enabled: bool) -> Client:
        """Enable or disable; disabled clients get no tokens and their tokens stop working."""
        if not self._clients.set_enabled(client_id, enabled):
            raise NotFound(f"No client {client_id!r}.", code=Code.CLIENT_NOT_FOUND)
        client = self._clients.get(client_id)
        assert client is not None  # just updated
        return replace(client)

    def set_label(self, client_id: str, label: str) -> Client:
        """Name the client for operators (shown by ``clients list``); "" removes the label."""
        checked = _checked_label(label) if label.strip() else None
        if not self._clients.set_label(client_id, checked):
            raise NotFound(f"No client {client_id!r}.", code=Code.CLIENT_NOT_FOUND)
        client = self._clients.get(client_id)
        assert client is not None  # just updated
        return client

    def rotate_secret(self, client_id: str, grace: timedelta | None = None) -> SecretRotation:
        """Issue a new secret; the replaced one keeps verifying for ``grace`` (default: the
        configured one; zero: it stops at once), so a partner can deploy the new one
        without a failed request.

        Only one previous secret is kept: rotating again within a grace ends the grace of
        the secret two rotations back at once (``dropped_previous_until`` says until when
        it would have lasted).
        """
        if grace is None:
            grace = self.grace
        if not timedelta(0) <= grace <= MAX_GRACE:
            raise ValueError(
                f"a grace of {spoken(grace)} is not allowed; give 0 (the old secret stops at once) "
                f"up to {MAX_GRACE.days} days"
            )
        now = self._clock.now()
        until = now + grace if grace > timedelta(0) else None
        secret = _new_secret()
        before = self._clients.rotate_secret(client_id, secret, now, until)
        if before is None:
            raise NotFound(f"No client {client_id!r}.", code=Code.CLIENT_NOT_FOUND)
        dropped = before.previous_expires_at if before.previous_secret_at(now) else None
        client = replace(
            before,
            secret_key=secret,
            secret_rotated_at=now,
            previous_secret_key=None if until is None else before.secret_key,
            previous_expires_at=until,
            token_generation=before.token_generation + 1,  # as the repository bumped it
        )
        return SecretRotation(client, until, dropped)


def new_client_id() -> str:
    """A fresh DOKU-style Client-Id (``BRN-0001-10791114622547``'s shape)."""
    return f"BRN-{secrets.randbelow(10_000):04d}-{secrets.randbelow(10**14):014d}"


def _new_secret() -> str:
    # 256 bits from the OS CSPRNG; the SK- prefix mirrors DOKU's secret keys.
    return f"SK-{secrets.token_urlsafe(32)}"


def _checked_label(label: str | None) -> str | None:
    if label is None:
        return None
    cleaned = label.strip()
    if not 1 <= len(cleaned) <= MAX_LABEL or not cleaned.isprintable():
        raise InvalidRequest(
            f"client label {label!r} must be 1-{MAX_LABEL} printable characters "
            '(e.g. "Toko Maju"); give "" to remove a label.',
            code=Code.CLIENT_LABEL_INVALID,
        )
    return cleaned
