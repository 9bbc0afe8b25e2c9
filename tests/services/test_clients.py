"""Partner clients: generated credentials, explicit ids, duplicates, enable and disable,
labels and secret rotation."""

from __future__ import annotations

import re
from datetime import timedelta

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


# labels


def test_a_label_is_kept_trimmed_changed_and_removed(service: ClientService) -> None:
    assert service.create("BRN-0001-1", label="  Toko Maju ").label == "Toko Maju"

    assert service.set_label("BRN-0001-1", "Toko Maju Jaya").label == "Toko Maju Jaya"
    assert [c.label for c in service.list()] == ["Toko Maju Jaya"]
    assert service.set_label("BRN-0001-1", "").label is None


@pytest.mark.parametrize("label", ["", "   ", "x" * 101, "two\nlines", "tab\there"])
def test_an_unprintable_or_overlong_label_is_refused(service: ClientService, label: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        service.create("BRN-0001-1", label=label)

    assert caught.value.code == "client_label_invalid"
    assert "1-100 printable characters" in caught.value.message
    assert service.list() == []


def test_labelling_an_unknown_client_names_it(service: ClientService) -> None:
    with pytest.raises(NotFound) as caught:
        service.set_label("BRN-0404-1", "Toko")

    assert caught.value.code == "client_not_found"


# secret rotation


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rotating(clock: FakeClock) -> ClientService:
    return ClientService(MemoryDatabase().clients, clock, grace=timedelta(hours=24))


def test_rotation_issues_a_new_secret_and_keeps_the_old_one_for_the_grace(
    rotating: ClientService, clock: FakeClock
) -> None:
    old = rotating.create("BRN-0001-1")
    clock.advance(timedelta(days=30))

    done = rotating.rotate_secret("BRN-0001-1", timedelta(hours=2))

    assert done.client.secret_key.startswith("SK-")
    assert done.client.secret_key != old.secret_key
    assert done.previous_valid_until == clock.now() + timedelta(hours=2)
    assert done.dropped_previous_until is None
    (stored,) = rotating.list()
    assert stored == done.client
    assert stored.secret_rotated_at == clock.now()
    assert stored.previous_secret_at(clock.now()) == old.secret_key
    assert stored.previous_secret_at(clock.now() + timedelta(hours=2)) is None


def test_the_configured_grace_applies_when_none_is_given(
    rotating: ClientService, clock: FakeClock
) -> None:
    rotating.create("BRN-0001-1")

    done = rotating.rotate_secret("BRN-0001-1")

    assert done.previous_valid_until == clock.now() + timedelta(hours=24)


def test_a_zero_grace_ends_the_old_secret_at_once(
    rotating: ClientService, clock: FakeClock
) -> None:
    rotating.create("BRN-0001-1")

    done = rotating.rotate_secret("BRN-0001-1", timedelta(0))

    assert done.previous_valid_until is None
    assert rotating.list()[0].previous_secret_at(clock.now()) is None


def test_rotating_twice_within_a_grace_says_which_secret_it_ended(
    rotating: ClientService, clock: FakeClock
) -> None:
    first = rotating.create("BRN-0001-1")
    second = rotating.rotate_secret("BRN-0001-1", timedelta(hours=24))
    clock.advance(timedelta(hours=1))

    third = rotating.rotate_secret("BRN-0001-1", timedelta(hours=24))

    assert third.dropped_previous_until == second.previous_valid_until
    (stored,) = rotating.list()
    assert stored.secret_key == third.client.secret_key
    assert stored.previous_secret_at(clock.now()) == second.client.secret_key
    assert first.secret_key not in (stored.secret_key, stored.previous_secret_key)


def test_rotating_after_the_grace_ended_drops_nothing_still_valid(
    rotating: ClientService, clock: FakeClock
) -> None:
    rotating.create("BRN-0001-1")
    rotating.rotate_secret("BRN-0001-1", timedelta(hours=1))
    clock.advance(timedelta(hours=1))

    assert rotating.rotate_secret("BRN-0001-1").dropped_previous_until is None


@pytest.mark.parametrize("grace", [timedelta(seconds=-1), timedelta(days=30, seconds=1)])
def test_a_negative_or_overlong_grace_is_refused(rotating: ClientService, grace: timedelta) -> None:
    created = rotating.create("BRN-0001-1")

    with pytest.raises(ValueError, match="up to 30 days"):
        rotating.rotate_secret("BRN-0001-1", grace)

    assert rotating.list() == [created]


def test_rotating_an_unknown_client_names_it(rotating: ClientService) -> None:
    with pytest.raises(NotFound) as caught:
        rotating.rotate_secret("BRN-0404-1")

    assert caught.value.code == "client_not_found"
    assert "BRN-0404-1" in caught.value.message
