"""``MemoryKeyStore``: signing keys in memory, the twin of ``SqlKeyStore``."""

from __future__ import annotations

import dataclasses
import threading

from berkas.adapters.keys import StoredKey


class MemoryKeyStore:
    """Signing keys in memory (an ``adapters.keys.KeyStore``), same rules as SqlKeyStore.

    Several ``KeyRing`` objects over one store behave like nodes sharing a database.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[StoredKey, bytes]] = {}

    def index(self) -> list[StoredKey]:
        with self._lock:
            return [key for key, _ in self._keys.values()]

    def private_pem(self, kid: str) -> bytes | None:
        with self._lock:
            found = self._keys.get(kid)
        return None if found is None else found[1]

    def add(self, key: StoredKey, pem: bytes, *, replace_current: bool) -> bool:
        with self._lock:
            if key.kid in self._keys:
                return False
            current = [k for k, _ in self._keys.values() if k.retired_at is None]
            if key.retired_at is None and current:
                if not replace_current:
                    return False
                for old in current:
                    retired = dataclasses.replace(old, retired_at=key.created_at)
                    self._keys[old.kid] = (retired, self._keys[old.kid][1])
            self._keys[key.kid] = (key, pem)
            return True

    def remove(self, kids: list[str]) -> None:
        with self._lock:
            for kid in kids:
                self._keys.pop(kid, None)
