"""Data dirs as berkas wrote them before secrets moved into the database (v0003 and older).

Written byte for byte in the old formats, so the migration is tested against what real
data dirs hold: ``keys/keyring.json`` plus one PKCS8 PEM per key (0600, dir 0700), a
``link-secret`` file, and client secrets in plaintext in the ``clients`` table.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import insert

from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.tables import clients
from berkas.adapters.keys import thumbprint


def pem_of(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_key_directory(
    directory: Path, keys: list[tuple[rsa.RSAPrivateKey, datetime, datetime | None]]
) -> list[str]:
    """An old ``keys`` directory holding ``keys`` (current first); returns their kids."""
    directory.mkdir(mode=0o700, parents=True)
    rows: list[dict[str, str | None]] = []
    kids: list[str] = []
    for key, created_at, retired_at in keys:
        kid = thumbprint(key.public_key())
        kids.append(kid)
        path = directory / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem_of(key))
        rows.append(
            {
                "kid": kid,
                "created_at": created_at.isoformat(),
                "retired_at": None if retired_at is None else retired_at.isoformat(),
            }
        )
    index = directory / "keyring.json"
    fd = os.open(index, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"version": 1, "keys": rows}, out, indent=2)
    (directory / ".lock").touch(mode=0o600)
    return kids


@dataclass(frozen=True)
class LegacyDataDir:
    """What an old data dir holds that must keep working after the upgrade."""

    signing_key: rsa.RSAPrivateKey
    kid: str
    link_secret: bytes
    client_id: str
    client_secret: str


def make_legacy_data_dir(data_dir: Path, now: datetime) -> LegacyDataDir:
    """A data dir in the v0003 layout: schema at 0003, one client, one key, a link secret."""
    data_dir.mkdir(mode=0o700, parents=True)
    database = SqlDatabase.from_url(f"sqlite:///{data_dir / 'berkas.db'}")
    client_id, client_secret = "BRN-0001-00000000000001", f"SK-{secrets.token_urlsafe(32)}"
    try:
        database.migrate("0003")
        with database.engine.begin() as connection:
            connection.execute(
                insert(clients).values(
                    client_id=client_id, secret_key=client_secret, enabled=True, created_at=now
                )
            )
    finally:
        database.close()
    key = new_rsa_key()
    (kid,) = write_key_directory(data_dir / "keys", [(key, now, None)])
    link_secret = secrets.token_hex(32).encode()
    fd = os.open(data_dir / "link-secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(link_secret)
    (data_dir / "blobs").mkdir(mode=0o700)
    return LegacyDataDir(key, kid, link_secret, client_id, client_secret)
