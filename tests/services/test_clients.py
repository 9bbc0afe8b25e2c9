"""Partner clients: generated credentials, explicit ids, duplicates, enable and disable."""

from __future__ import annotations

import re

import pytest

from berkas.adapters.db.memory import MemoryDatabase
from berkas.core.errors import Conflict, InvalidRequest, NotFound
from berkas.services.clients import ClientService
from tests.support.fakes import FakeClock


@pytest.fixture
def service() -> ClientService:
    return ClientService(MemoryDatabase().clients, FakeClock())


def test_a_generated_client_looks_like_dokus_and_has_a_strong_secret(
    service: ClientService,
) -> None:
    first, second = service.create(), service.create()

    assert re.fullmatch(r"BRN-[0-9]{4}-[0-9]{14}", first.client_id)
    assert first.enabled
    assert first.secret_key.startswith("SK-")
    # 32 random bytes, URL-safe base64: 43 characters after the prefix.
    assert len(first.secret_key) == 3 + 43
    assert first.secret_key != second.secret_key
    assert first.client_id != second.client_id
    assert {c.client_id for c in service.list()} == {first.client_id, second.client_id}


def test_an_explicit_id_is_kept(service: ClientService) -> None:
    client = service.create("BRN-0001-10791114622547")

    assert client.client_id == "BRN-0001-10791114622547"
    assert [c.client_id for c in service.list()] == ["BRN-0001-10791114622547"]


@pytest.mark.parametrize(
    "client_id", ["", "../etc", "has space", "a/b", "-leading-dash", "x" * 65, "BRN\n1"]
)
def test_an_id_unsafe_in_an_object_key_is_refused(service: ClientService, client_id: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        service.create(client_id)

    assert caught.value.code == "client_id_invalid"
    assert "BRN-0001-10791114622547" in caught.value.message  # shows what is accepted
    assert service.list() == []


def test_an_id_with_a_trailing_newline_is_refused(service: ClientService) -> None:
    # A newline in Client-Id can never be signed (DESIGN 2.1 lines are LF-separated).
    with pytest.raises(InvalidRequest):
        service.create("BRN-0001-1\n")


def test_a_duplicate_id_is_a_conflict_and_keeps_the_first_secret(service: ClientService) -> None:
    first = service.create("BRN-0001-1")

    with pytest.raises(Conflict) as caught:
        service.create("BRN-0001-1")

    assert caught.value.code == "client_exists"
    assert "BRN-0001-1" in caught.value.message
    assert [c.secret_key for c in service.list()] == [first.secret_key]


def test_disable_and_enable_round_trip(service: ClientService) -> None:
    service.create("BRN-0001-1")

    assert service.set_enabled("BRN-0001-1", False).enabled is False
    assert [c.enabled for c in service.list()] == [False]
    assert service.set_enabled("BRN-0001-1", True).enabled is True


def test_disabling_an_unknown_client_names_it(service: ClientService) -> None:
    with pytest.raises(NotFound) as caught:
        service.set_enabled("BRN-0404-1", False)

    assert caught.value.code == "client_not_found"
    assert "BRN-0404-1" in caught.value.message
