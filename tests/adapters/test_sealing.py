"""Sealing secrets under the master key: AES-256-GCM, bound to their row, with key ids."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from berkas.adapters.sealing import (
    MasterKey,
    Sealer,
    SealingError,
    create_key_file,
    is_sealed,
    parse_master_key,
    read_key_file,
    sealed_kid,
)

OLD = MasterKey(bytes(range(32)))
NEW = MasterKey(bytes(range(1, 33)))


def test_a_sealed_value_opens_to_the_plaintext_and_does_not_contain_it() -> None:
    sealer = Sealer(NEW, source="test")
    sealed = sealer.seal(b"SK-very-secret", "client:BRN-1:secret_key")

    assert is_sealed(sealed)
    assert sealed.startswith(f"sealed:v1:{NEW.kid}:")
    assert "SK-very-secret" not in sealed
    assert sealer.open(sealed, "client:BRN-1:secret_key") == b"SK-very-secret"
    # A fresh nonce each time: the same secret never seals to the same text.
    assert sealer.seal(b"SK-very-secret", "client:BRN-1:secret_key") != sealed


def test_a_value_copied_to_another_row_does_not_open() -> None:
    sealer = Sealer(NEW, source="test")
    sealed = sealer.seal(b"SK-of-client-1", "client:BRN-1:secret_key")
    with pytest.raises(SealingError, match="altered or copied from another row"):
        sealer.open(sealed, "client:BRN-2:secret_key")


@pytest.mark.parametrize("position", [-3, -30, len("sealed:v1:") + 20])
def test_a_tampered_value_does_not_open(position: int) -> None:
    # Positions inside the tag, the ciphertext and the key id. (The last character of
    # unpadded base64 may carry only padding bits, so it is not a meaningful flip.)
    sealer = Sealer(NEW, source="test")
    sealed = sealer.seal(b"a secret of some length", "ctx")
    index = position % len(sealed)
    flipped = "A" if sealed[index] != "A" else "B"
    with pytest.raises(SealingError):
        sealer.open(sealed[:index] + flipped + sealed[index + 1 :], "ctx")


def test_an_older_key_still_opens_but_only_the_current_one_seals() -> None:
    sealed_with_old = Sealer(OLD, source="test").seal(b"secret", "ctx")
    rotated = Sealer(NEW, [OLD], source="test")

    assert rotated.open(sealed_with_old, "ctx") == b"secret"
    assert rotated.needs_reseal(sealed_with_old)
    assert sealed_kid(rotated.seal(b"secret", "ctx")) == NEW.kid
    assert not rotated.needs_reseal(rotated.seal(b"secret", "ctx"))
    assert rotated.needs_reseal("SK-plaintext-from-before-sealing")
    assert rotated.kids == (NEW.kid, OLD.kid)


def test_a_value_sealed_with_a_key_this_node_lacks_names_both_keys() -> None:
    sealed = Sealer(OLD, source="test").seal(b"secret", "signing-key:abc")
    with pytest.raises(SealingError) as caught:
        Sealer(NEW, source="BERKAS_MASTER_KEY").open(sealed, "signing-key:abc")
    message = str(caught.value)
    assert f"sealed with master key {OLD.kid}" in message
    assert f"it has {NEW.kid} from BERKAS_MASTER_KEY" in message
    assert "same BERKAS_MASTER_KEY" in message


def test_the_key_id_and_repr_never_show_the_key() -> None:
    key = MasterKey(b"k" * 32)
    assert "k" * 8 not in repr(key)
    assert base64.b64encode(key.key).decode() not in key.kid
    assert MasterKey(b"k" * 32).kid == key.kid  # stable: every node derives the same id


@pytest.mark.parametrize(
    "text", ["", "not base64 at all!", base64.b64encode(b"short").decode(), "A" * 64]
)
def test_a_master_key_that_is_not_32_bytes_of_base64_is_refused(text: str) -> None:
    with pytest.raises(SealingError, match=r"^BERKAS_MASTER_KEY: a master key is 32 random"):
        parse_master_key(text, where="BERKAS_MASTER_KEY")


def test_both_base64_alphabets_are_accepted() -> None:
    raw = bytes([0xFB, 0xFF] * 16)
    assert parse_master_key(base64.b64encode(raw).decode(), where="x").key == raw
    assert (
        parse_master_key(base64.urlsafe_b64encode(raw).decode().rstrip("="), where="x").key == raw
    )


def test_a_created_key_file_is_private_and_holds_one_key(tmp_path: Path) -> None:
    path = tmp_path / "master-key"
    create_key_file(path)
    first = read_key_file(path)
    create_key_file(path)  # never replaced once there

    assert (path.stat().st_mode & 0o777) == 0o600
    assert len(first) == 1
    assert read_key_file(path) == first


def test_a_key_file_lists_the_current_key_first_then_older_ones(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(
        f"# rotated 2026-12-01\n{base64.b64encode(NEW.key).decode()}\n\n"
        f"{base64.b64encode(OLD.key).decode()}\n"
    )
    path.chmod(0o600)
    assert read_key_file(path) == [NEW, OLD]


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(base64.b64encode(NEW.key).decode())
    path.chmod(0o644)
    with pytest.raises(SealingError, match=r"chmod 600"):
        read_key_file(path)


def test_a_bad_line_of_a_key_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{base64.b64encode(NEW.key).decode()}\nnope\n")
    path.chmod(0o600)
    with pytest.raises(SealingError, match=rf"^{path} line 2: "):
        read_key_file(path)
