"""Partner clients: create, list, disable (operator verbs behind ``berkas clients``)."""

from __future__ import annotations

import re
import secrets
from dataclasses import replace

from berkas.core.codes import Code
from berkas.core.errors import InvalidRequest, NotFound
from berkas.core.models import Client
from berkas.core.ports import ClientRepository, Clock

# The id ends up in object keys (DESIGN 2.4 layout), so it is restricted to characters
# that are safe in a path segment; DOKU's look like BRN-0001-10791114622547.
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class ClientService:
    """Creates partner credentials with strong random secrets."""

    def __init__(self, clients: ClientRepository, clock: Clock) -> None:
        self._clients = clients
        self._clock = clock

    def create(self, client_id: str | None = None) -> Client:
        """A new enabled client; a DOKU-style ``BRN-`` id is generated when none is given."""
        if client_id is None:
            client_id = f"BRN-{secrets.randbelow(10_000):04d}-{secrets.randbelow(10**14):014d}"
        elif not CLIENT_ID_PATTERN.fullmatch(client_id):
            raise InvalidRequest(
                f"client id {client_id!r} must be 1-64 letters, digits, '-' or '_' "
                "(e.g. BRN-0001-10791114622547).",
                code=Code.CLIENT_ID_INVALID,
            )
        # 256 bits from the OS CSPRNG; the SK- prefix mirrors DOKU's secret keys.
        client = Client(
            client_id=client_id,
            secret_key=f"SK-{secrets.token_urlsafe(32)}",
            enabled=True,
            created_at=self._clock.now(),
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
