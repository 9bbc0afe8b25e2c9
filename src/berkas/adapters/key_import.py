"""The one-time import of a key directory written by berkas before keys moved into the
database (``keyring.json`` plus one PKCS8 PEM per key) into a ``KeyStore``."""

from __future__ import annotations

import json
import re
import shutil
import stat
from datetime import datetime
from pathlib import Path

from berkas.adapters.durable import fsync_dir
from berkas.adapters.keys import (
    KeyRingError,
    KeyStore,
    StoredKey,
    key_entry,
    parse_private_key,
)

INDEX_NAME = "keyring.json"
_INDEX_VERSION = 1
# A kid is an RFC 7638 thumbprint: base64url (no padding) of a SHA-256 digest, 43
# characters. It names a file, so nothing else is ever accepted from the index.
_KID = re.compile(r"[A-Za-z0-9_-]{43}")

# Key directories of berkas before the keys moved into the database: imported once at
# start (berkas.wiring.prepare), then removed.


def read_key_directory(directory: Path) -> list[tuple[StoredKey, bytes]]:
    """The keys of a pre-database key directory (``keyring.json`` plus PEM files).

    Raises ``KeyRingError`` for a file others can access, a corrupt index or a key that
    does not match its name, as the file-backed ring did: such a key may be copied.
    """
    _check_private(directory, "key directory", "700")
    keys: list[tuple[StoredKey, bytes]] = []
    for kid, created_at, retired_at in _read_index(directory):
        path = directory / f"{kid}.pem"
        _check_private(path, "key file", "600")
        pem = path.read_bytes()
        key = StoredKey(kid, created_at, retired_at)
        key_entry(key, parse_private_key(pem, str(path)))  # refuses a swapped file
        keys.append((key, pem))
    return keys


def import_key_directory(store: KeyStore, directory: Path, now: datetime) -> int:
    """Move the keys of a pre-database key directory into ``store``, then delete it.

    Tokens they signed keep verifying: every key keeps its kid and dates. When the store
    already has a current key (another node imported first, or this is a second data
    dir), an imported current key is stored as retired now. Returns how many were added.
    """
    done = directory.with_name(f"{directory.name}.imported")
    if done.exists():  # imported and renamed, then a crash before it was deleted
        shutil.rmtree(done)
    if not (directory / INDEX_NAME).exists():
        return 0
    added = 0
    for key, pem in read_key_directory(directory):
        if store.add(key, pem, replace_current=False):
            added += 1
        elif key.retired_at is None and store.add(
            StoredKey(key.kid, key.created_at, now), pem, replace_current=False
        ):
            added += 1  # another key is current already: this one verifies, retired
    # Stored (committed) first, then moved aside in one atomic rename, then deleted: a
    # crash before the rename imports again (adding nothing twice), one after it leaves
    # only the renamed directory, which the next start deletes.
    directory.rename(done)
    fsync_dir(directory.parent)
    shutil.rmtree(done)
    return added


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
            f"{stat.S_IMODE(st.st_mode):04o}); berkas refuses to import it because whoever "
            f"could read or replace it can forge tokens. Run `chmod {mode} {path}`, and "
            "rotate the key (`berkas keys rotate`) once started if others may have copied it."
        )
