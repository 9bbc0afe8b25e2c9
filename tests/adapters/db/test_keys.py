"""The signing-key ring over each key store (memory, SQLite, PostgreSQL): first key,
rotation, pruning, reload across nodes, and the import of an old key directory."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from berkas.adapters.db.database import SqlDatabase
from berkas.adapters.db.memory import MemoryKeyStore
from berkas.adapters.db.tables import signing_keys
from berkas.adapters.key_import import import_key_directory
from berkas.adapters.keys import (
    KeyRing,
    KeyRingError,
    KeyStore,
    StoredKey,
    thumbprint,
)
from berkas.adapters.sealing import SealingError
from berkas.core.codes import Code
from berkas.core.errors import Unavailable
from tests.adapters.db.conftest import SQL_BACKENDS
from tests.support.fakes import FakeClock
from tests.support.legacy import new_rsa_key, pem_of, write_key_directory

LIFETIME = timedelta(hours=24)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 1, 8, 0, tzinfo=UTC))


@pytest.fixture(params=["memory", *SQL_BACKENDS])
def store(request: pytest.FixtureRequest) -> KeyStore:
    """An empty key store; SQL ones on a migrated database."""
    if request.param == "memory":
        return MemoryKeyStore()
    database: SqlDatabase = request.getfixturevalue(f"{request.param}_database")
    database.migrate()
    return database.signing_keys


def open_ring(
    store: KeyStore,
    clock: FakeClock,
    *,
    bits: int = 2048,
    refresh_interval: float = 5.0,
    monotonic: Callable[[], float] = time.monotonic,
    create: bool = True,
) -> KeyRing:
    return KeyRing.open(
        store,
        clock=clock,
        max_token_lifetime=LIFETIME,
        bits=bits,
        refresh_interval=refresh_interval,
        monotonic=monotonic,
        create=create,
    )


def published_kids(ring: KeyRing) -> list[str]:
    keys = ring.jwks()["keys"]
    assert isinstance(keys, list)
    return [key["kid"] for key in keys]


def test_first_open_creates_one_key_and_a_second_open_loads_it(
    store: KeyStore, clock: FakeClock
) -> None:
    ring = open_ring(store, clock)
    again = open_ring(store, clock)

    assert again.current().kid == ring.current().kid
    assert ring.current().private_key.key_size == 2048
    assert store.index() == [StoredKey(ring.current().kid, clock.current, None)]


def test_without_create_an_empty_store_is_refused(store: KeyStore, clock: FakeClock) -> None:
    with pytest.raises(KeyRingError, match="berkas db migrate"):
        open_ring(store, clock, create=False)
    assert store.index() == []


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 7638 section 3.1: the example key and its SHA-256 thumbprint.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(jwt.utils.base64url_decode(n), "big")
    key = rsa.RSAPublicNumbers(e=65537, n=modulus).public_key()

    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_keys_shorter_than_2048_bits_are_refused(clock: FakeClock) -> None:
    store = MemoryKeyStore()
    with pytest.raises(ValueError, match="NIST SP 800-131A"):
        open_ring(store, clock, bits=1024)
    assert store.index() == []


def test_a_stored_key_that_does_not_match_its_kid_is_refused(clock: FakeClock) -> None:
    store = MemoryKeyStore()
    key = new_rsa_key()
    store.add(
        StoredKey(thumbprint(new_rsa_key().public_key()), clock.now(), None),
        pem_of(key),
        replace_current=False,
    )

    with pytest.raises(KeyRingError, match="thumbprint mismatch"):
        open_ring(store, clock)


def test_rotation_keeps_the_old_key_verifying_until_its_tokens_expire(
    store: KeyStore, clock: FakeClock
) -> None:
    ring = open_ring(store, clock)
    old = ring.current().kid
    created = clock.current
    clock.current += timedelta(days=3)
    retired_at = clock.current

    new = ring.rotate()

    assert ring.current().kid == new != old
    assert ring.verification_key(old) is not None
    assert published_kids(ring) == [new, old]
    assert sorted(store.index(), key=lambda key: key.created_at) == [
        StoredKey(old, created, retired_at),
        StoredKey(new, retired_at, None),
    ]

    clock.current = retired_at + LIFETIME - timedelta(seconds=1)
    assert ring.verification_key(old) is not None
    assert ring.prune() == []

    clock.current = retired_at + LIFETIME
    assert ring.verification_key(old) is None
    assert published_kids(ring) == [new]
    assert ring.prune() == [old]
    assert [key.kid for key in store.index()] == [new]
    assert open_ring(store, clock).current().kid == new


def test_jwks_publishes_usable_rs256_public_keys(store: KeyStore, clock: FakeClock) -> None:
    ring = open_ring(store, clock)
    old = ring.current()
    ring.rotate()

    jwks = ring.jwks()
    keys = jwks["keys"]
    assert isinstance(keys, list)
    for jwk in keys:
        assert set(jwk) == {"kty", "use", "alg", "kid", "n", "e"}
        assert (jwk["kty"], jwk["use"], jwk["alg"], jwk["e"]) == ("RSA", "sig", "RS256", "AQAB")
        assert "d" not in jwk  # never the private exponent
    # A partner holding only the JWKS can verify what the retired key signed.
    token = jwt.encode({"sub": "x"}, old.private_key, algorithm="RS256")
    published = jwt.PyJWKSet.from_dict(jwks)[old.kid]
    assert jwt.decode(token, published.key, algorithms=["RS256"]) == {"sub": "x"}


def test_refresh_picks_up_a_rotation_by_another_node_at_most_every_interval(
    store: KeyStore, clock: FakeClock
) -> None:
    monotonic = FakeClock()
    node = open_ring(store, clock, refresh_interval=5.0, monotonic=monotonic)
    other = open_ring(store, clock)
    new = other.rotate()

    monotonic.advance(timedelta(seconds=4.9))
    assert node.refresh() is False  # rate-limited: the store is not read
    assert node.verification_key(new) is None

    monotonic.advance(timedelta(seconds=0.2))
    assert node.refresh() is True
    assert node.current().kid == new
    assert node.verification_key(new) is not None

    monotonic.advance(timedelta(seconds=10))
    assert node.refresh() is False  # nothing changed


def test_rotations_racing_on_two_nodes_leave_exactly_one_current_key(
    store: KeyStore, clock: FakeClock
) -> None:
    first = open_ring(store, clock)
    second = open_ring(store, clock)
    a = first.rotate()
    b = second.rotate()  # second still believes the first key is current

    second.reload()
    first.reload()
    assert [key.kid for key in store.index() if key.retired_at is None] == [b]
    assert first.current().kid == second.current().kid == b
    assert first.verification_key(a) is not None  # retired, still verifying


def test_nodes_creating_the_first_key_together_agree_on_one(clock: FakeClock) -> None:
    store = MemoryKeyStore()
    key = new_rsa_key()
    # Another node stored its first key between our emptiness check and our insert.
    assert store.add(
        StoredKey(thumbprint(key.public_key()), clock.now(), None),
        pem_of(key),
        replace_current=False,
    )
    assert not store.add(
        StoredKey(thumbprint(new_rsa_key().public_key()), clock.now(), None),
        pem_of(new_rsa_key()),
        replace_current=False,
    )
    assert open_ring(store, clock).current().kid == thumbprint(key.public_key())


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_private_keys_are_sealed_in_the_database(
    backend: str, request: pytest.FixtureRequest, clock: FakeClock
) -> None:
    database: SqlDatabase = request.getfixturevalue(f"{backend}_database")
    database.migrate()
    ring = open_ring(database.signing_keys, clock)
    kid = ring.current().kid

    with database.engine.connect() as connection:
        stored = connection.execute(select(signing_keys.c.private_key)).scalar_one()
    assert stored.startswith("sealed:v1:")
    assert "PRIVATE KEY" not in stored

    # A sealed key moved onto another kid's row does not open (bound to its kid).
    other = ring.rotate()
    with database.engine.begin() as connection:
        connection.execute(
            update(signing_keys).where(signing_keys.c.kid == other).values(private_key=stored)
        )
    with pytest.raises(SealingError, match=f"signing-key:{other}"):
        database.signing_keys.private_pem(other)
    assert database.signing_keys.private_pem(kid) is not None


@pytest.mark.parametrize("backend", SQL_BACKENDS)
def test_the_database_refuses_a_second_current_key(
    backend: str, request: pytest.FixtureRequest, clock: FakeClock
) -> None:
    database: SqlDatabase = request.getfixturevalue(f"{backend}_database")
    database.migrate()
    open_ring(database.signing_keys, clock)
    two_current = text(
        "INSERT INTO signing_keys (kid, created_at, is_current, private_key) "
        "VALUES ('a', CURRENT_TIMESTAMP, TRUE, 'x')"
    )
    with database.engine.connect() as connection, pytest.raises(IntegrityError):
        connection.execute(two_current)


# The import of a key directory written before keys moved into the database.


def test_an_old_key_directory_moves_into_the_store_with_its_dates(
    tmp_path: Path, store: KeyStore, clock: FakeClock
) -> None:
    current, retired = new_rsa_key(), new_rsa_key()
    created, retired_at = clock.now() - timedelta(days=9), clock.now() - timedelta(hours=1)
    kids = write_key_directory(
        tmp_path / "keys", [(current, retired_at, None), (retired, created, retired_at)]
    )

    assert import_key_directory(store, tmp_path / "keys", clock.now()) == 2
    assert not (tmp_path / "keys").exists()
    ring = open_ring(store, clock)
    assert ring.current().kid == kids[0]
    assert published_kids(ring) == kids
    # A token the old server signed with the retired key still verifies.
    token = jwt.encode({"sub": "x"}, retired, algorithm="RS256", headers={"kid": kids[1]})
    public = ring.verification_key(kids[1])
    assert public is not None
    assert jwt.decode(token, public, algorithms=["RS256"]) == {"sub": "x"}
    # Importing again (a crash before the directory was removed) adds nothing.
    write_key_directory(tmp_path / "keys", [(current, retired_at, None)])
    assert import_key_directory(store, tmp_path / "keys", clock.now()) == 0


def test_an_imported_current_key_is_retired_when_the_store_has_one(
    tmp_path: Path, store: KeyStore, clock: FakeClock
) -> None:
    ring = open_ring(store, clock)
    key = new_rsa_key()
    (kid,) = write_key_directory(tmp_path / "keys", [(key, clock.now(), None)])

    assert import_key_directory(store, tmp_path / "keys", clock.now()) == 1
    ring.reload()
    assert ring.current().kid != kid
    assert ring.verification_key(kid) is not None  # its tokens keep verifying


def test_a_group_readable_old_key_file_is_not_imported(
    tmp_path: Path, store: KeyStore, clock: FakeClock
) -> None:
    (kid,) = write_key_directory(tmp_path / "keys", [(new_rsa_key(), clock.now(), None)])
    (tmp_path / "keys" / f"{kid}.pem").chmod(0o640)

    with pytest.raises(KeyRingError, match=r"chmod 600"):
        import_key_directory(store, tmp_path / "keys", clock.now())
    assert store.index() == []
    assert (tmp_path / "keys" / f"{kid}.pem").exists()  # refused, left for the operator


def test_an_old_index_naming_a_path_is_refused(
    tmp_path: Path, store: KeyStore, clock: FakeClock
) -> None:
    write_key_directory(tmp_path / "keys", [(new_rsa_key(), clock.now(), None)])
    index = tmp_path / "keys" / "keyring.json"
    document = json.loads(index.read_text())
    document["keys"][0]["kid"] = "../../etc/passwd"
    index.write_text(json.dumps(document))

    with pytest.raises(KeyRingError, match="kid must be a 43-character RFC 7638 thumbprint"):
        import_key_directory(store, tmp_path / "keys", clock.now())
    assert store.index() == []


class _Outage:
    """A key store whose database has gone away."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.down = False

    def index(self) -> list[StoredKey]:
        if self.down:
            raise Unavailable("down", code=Code.DATABASE_UNAVAILABLE)
        return self.store.index()

    def private_pem(self, kid: str) -> bytes | None:
        return self.store.private_pem(kid)

    def add(self, key: StoredKey, pem: bytes, *, replace_current: bool) -> bool:
        return self.store.add(key, pem, replace_current=replace_current)

    def remove(self, kids: list[str]) -> None:
        self.store.remove(kids)


def test_refresh_keeps_serving_the_keys_it_has_while_the_database_is_down(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic = FakeClock()
    store = _Outage(MemoryKeyStore())
    ring = open_ring(store, clock, monotonic=monotonic)
    kid = ring.current().kid
    store.down = True

    monotonic.advance(timedelta(seconds=60))
    assert ring.refresh() is False
    assert ring.verification_key(kid) is not None
    assert "could not reload the signing keys" in caplog.text


def test_a_crash_after_the_old_directory_was_moved_aside_is_finished_at_next_start(
    tmp_path: Path, store: KeyStore, clock: FakeClock
) -> None:
    write_key_directory(tmp_path / "keys.imported", [(new_rsa_key(), clock.now(), None)])

    assert import_key_directory(store, tmp_path / "keys", clock.now()) == 0
    assert not (tmp_path / "keys.imported").exists()  # no private key left on disk


def test_a_retired_key_that_cannot_be_opened_does_not_stop_the_others(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryKeyStore()
    ring = open_ring(store, clock)
    broken = new_rsa_key()
    broken_kid = thumbprint(broken.public_key())
    # As if sealed under a master key this node lacks: its PEM does not parse.
    store.add(StoredKey(broken_kid, clock.now(), clock.now()), b"not a pem", replace_current=False)

    again = open_ring(store, clock)
    assert again.current().kid == ring.current().kid
    assert again.verification_key(broken_kid) is None
    assert f"retired signing key {broken_kid} cannot be loaded" in caplog.text


def test_status_lists_each_key_as_active_retiring_then_expired(
    store: KeyStore, clock: FakeClock
) -> None:
    ring = open_ring(store, clock)
    first = ring.current().kid
    first_created = clock.now()
    clock.advance(timedelta(hours=1))
    retired = clock.now()
    second = ring.rotate()

    listed = ring.status()

    assert [(key.kid, key.state) for key in listed] == [(second, "active"), (first, "retiring")]
    active, retiring = listed
    assert (active.created_at, active.retired_at, active.verifies_until) == (retired, None, None)
    assert retiring.created_at == first_created
    assert retiring.retired_at == retired
    assert retiring.verifies_until == retired + LIFETIME

    clock.current = retired + LIFETIME  # the last token the old key signed expires now
    assert [key.state for key in ring.status()] == ["active", "expired"]
    ring.prune()
    assert [key.kid for key in ring.status()] == [second]
