"""The file-backed RSA key ring: first start, permissions, rotation, pruning, reload."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from berkas.adapters.keys import INDEX_NAME, KeyRing, KeyRingError, thumbprint
from tests.support.fakes import FakeClock

LIFETIME = timedelta(hours=24)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 1, 8, 0, tzinfo=UTC))


def open_ring(
    directory: Path,
    clock: FakeClock,
    *,
    bits: int = 2048,
    refresh_interval: float = 5.0,
    monotonic: Callable[[], float] = time.monotonic,
) -> KeyRing:
    return KeyRing.open(
        directory,
        clock=clock,
        max_token_lifetime=LIFETIME,
        bits=bits,
        refresh_interval=refresh_interval,
        monotonic=monotonic,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def index(directory: Path) -> list[dict[str, object]]:
    keys = json.loads((directory / INDEX_NAME).read_text())["keys"]
    assert isinstance(keys, list)
    return keys


def published_kids(ring: KeyRing) -> list[str]:
    keys = ring.jwks()["keys"]
    assert isinstance(keys, list)
    return [key["kid"] for key in keys]


def test_first_open_creates_one_private_key(tmp_path: Path, clock: FakeClock) -> None:
    directory = tmp_path / "keys"
    ring = open_ring(directory, clock)

    kid = ring.current().kid
    pem = directory / f"{kid}.pem"
    assert mode(directory) == 0o700
    assert mode(pem) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert ring.current().private_key.key_size == 2048
    assert index(directory) == [
        {"kid": kid, "created_at": clock.current.isoformat(), "retired_at": None}
    ]
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [".lock", INDEX_NAME, f"{kid}.pem"]
    )  # no temporary files left behind


def test_second_open_loads_the_same_key(tmp_path: Path, clock: FakeClock) -> None:
    first = open_ring(tmp_path, clock)
    second = open_ring(tmp_path, clock)

    assert second.current().kid == first.current().kid
    assert len(list(tmp_path.glob("*.pem"))) == 1


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


def test_keys_shorter_than_2048_bits_are_refused(tmp_path: Path, clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="NIST SP 800-131A"):
        open_ring(tmp_path, clock, bits=1024)
    assert not any(tmp_path.iterdir())


def test_group_readable_key_file_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    kid = open_ring(tmp_path, clock).current().kid
    pem = tmp_path / f"{kid}.pem"
    pem.chmod(0o640)

    with pytest.raises(KeyRingError, match=r"chmod 600") as caught:
        open_ring(tmp_path, clock)
    assert str(pem) in str(caught.value)
    assert mode(pem) == 0o640  # refused, not silently "fixed"


def test_directory_writable_by_others_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    open_ring(tmp_path / "keys", clock)
    (tmp_path / "keys").chmod(0o777)

    with pytest.raises(KeyRingError, match=r"chmod 700"):
        open_ring(tmp_path / "keys", clock)


def test_key_file_replaced_by_another_key_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    kid = open_ring(tmp_path, clock).current().kid
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / f"{kid}.pem").write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    with pytest.raises(KeyRingError, match="thumbprint mismatch"):
        open_ring(tmp_path, clock)


def test_index_naming_a_path_is_refused(tmp_path: Path, clock: FakeClock) -> None:
    open_ring(tmp_path, clock)
    document = json.loads((tmp_path / INDEX_NAME).read_text())
    document["keys"][0]["kid"] = "../../etc/passwd"
    (tmp_path / INDEX_NAME).write_text(json.dumps(document))

    with pytest.raises(KeyRingError, match="kid must be a 43-character RFC 7638 thumbprint"):
        open_ring(tmp_path, clock)


def test_rotation_keeps_the_old_key_verifying_until_its_tokens_expire(
    tmp_path: Path, clock: FakeClock
) -> None:
    ring = open_ring(tmp_path, clock)
    old = ring.current().kid
    clock.current += timedelta(days=3)
    retired_at = clock.current

    new = ring.rotate()

    assert ring.current().kid == new != old
    assert ring.verification_key(old) is not None
    assert published_kids(ring) == [new, old]
    assert index(tmp_path)[1] == {
        "kid": old,
        "created_at": (retired_at - timedelta(days=3)).isoformat(),
        "retired_at": retired_at.isoformat(),
    }

    clock.current = retired_at + LIFETIME - timedelta(seconds=1)
    assert ring.verification_key(old) is not None
    assert ring.prune() == []

    clock.current = retired_at + LIFETIME
    assert ring.verification_key(old) is None
    assert published_kids(ring) == [new]
    assert ring.prune() == [old]
    assert not (tmp_path / f"{old}.pem").exists()
    assert [row["kid"] for row in index(tmp_path)] == [new]
    assert open_ring(tmp_path, clock).current().kid == new


def test_jwks_publishes_usable_rs256_public_keys(tmp_path: Path, clock: FakeClock) -> None:
    ring = open_ring(tmp_path, clock)
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


def test_refresh_picks_up_a_rotation_from_another_process_at_most_every_interval(
    tmp_path: Path, clock: FakeClock
) -> None:
    monotonic = FakeClock()
    server = open_ring(tmp_path, clock, refresh_interval=5.0, monotonic=monotonic)
    cli = open_ring(tmp_path, clock)
    new = cli.rotate()

    monotonic.advance(timedelta(seconds=4.9))
    assert server.refresh() is False  # rate-limited: the disk is not read
    assert server.verification_key(new) is None

    monotonic.advance(timedelta(seconds=0.2))
    assert server.refresh() is True
    assert server.current().kid == new
    assert server.verification_key(new) is not None

    monotonic.advance(timedelta(seconds=10))
    assert server.refresh() is False  # nothing changed on disk


def test_refresh_keeps_serving_when_the_directory_breaks(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    monotonic = FakeClock()
    ring = open_ring(tmp_path, clock, monotonic=monotonic)
    kid = ring.current().kid
    (tmp_path / INDEX_NAME).write_text("{not json")

    monotonic.advance(timedelta(seconds=60))
    assert ring.refresh() is False
    assert ring.verification_key(kid) is not None
    assert "could not reload the key ring" in caplog.text


def test_written_files_are_private_even_with_a_permissive_umask(
    tmp_path: Path, clock: FakeClock
) -> None:
    previous = os.umask(0)
    try:
        ring = open_ring(tmp_path / "keys", clock)
        new = ring.rotate()
    finally:
        os.umask(previous)
    assert mode(tmp_path / "keys") == 0o700
    assert mode(tmp_path / "keys" / f"{new}.pem") == 0o600
    assert mode(tmp_path / "keys" / INDEX_NAME) == 0o600
