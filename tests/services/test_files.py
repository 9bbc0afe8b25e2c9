"""Reading files back: a partner sees only its own; a link opens one object for a while."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from berkas.adapters.db.memory import MemoryDatabase
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.core.codes import Code
from berkas.core.errors import Conflict, NotFound, PermissionDenied, Unavailable
from berkas.core.links import LinkSigner
from berkas.core.models import Caller, Client, EventKind, StoredFile
from berkas.services.files import FileService
from berkas.services.links import IssuedLink, LinkService
from tests.support import samples
from tests.support.fakes import FakeClock

SECRET = b"link-secret-".ljust(32, b"x")
TTL = timedelta(minutes=60)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clock = FakeClock()
        self.db = MemoryDatabase()
        self.blobs = MemoryBlobStore()
        self.signer = LinkSigner(SECRET)
        self.links = LinkService(self.signer, self.clock, base_url="http://b.test", ttl=TTL)
        self.files = FileService(
            self.db.files,
            self.blobs,
            self.links,
            events=self.db.events,
            clock=self.clock,
            node_id=1,
        )
        self.alice = self.client("BRN-0001-1")
        self.bob = self.client("BRN-0002-2")

    def client(self, client_id: str) -> Client:
        client = Client(client_id, f"SK-{client_id}", True, self.clock.now())
        self.db.clients.add(client)
        return client

    def store(self, owner: Client, file_id: str, data: bytes, **fields: Any) -> StoredFile:
        key = f"berkas/sandbox/TEMP/{owner.client_id}/LOGO/{file_id[-13:]}-0001.png"
        path = self.tmp_path / f"{file_id}.png"
        path.write_bytes(data)
        self.blobs.put_file(key, path, "image/png")
        stored = StoredFile(
            id=file_id,
            client_id=owner.client_id,
            category="LOGO",
            code=None,
            key=key,
            content_type="image/png",
            size=len(data),
            sha256=samples.sha256(data),
            width=40,
            height=30,
            created_at=self.clock.now(),
            **fields,
        )
        self.db.files.add(stored)
        return stored


def link_parts(link: IssuedLink) -> tuple[str, str, str]:
    url = urlsplit(link.url)
    query = parse_qs(url.query)
    return url.path.removeprefix("/links/"), query["expires"][0], query["signature"][0]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_an_owner_gets_metadata_and_a_link_that_opens_the_bytes(world: World) -> None:
    data = samples.png()
    stored = world.store(world.alice, "DCM-0001-1700000000000", data)

    view = world.files.describe(world.alice, stored.id)

    assert view.stored == stored
    assert view.link.expires_at == world.clock.now() + TTL
    found, chunks = world.files.open_link(*link_parts(view.link))
    assert found == stored
    assert b"".join(chunks) == data


def test_another_partners_id_looks_exactly_like_a_missing_one(world: World) -> None:
    stored = world.store(world.alice, "DCM-0001-1700000000000", samples.png())

    with pytest.raises(NotFound) as foreign:
        world.files.describe(world.bob, stored.id)
    with pytest.raises(NotFound) as missing:
        world.files.describe(world.bob, "DCM-0001-1700000000001")

    assert foreign.value.code == missing.value.code == "file_not_found"
    assert foreign.value.message == missing.value.message.replace("1700000000001", "1700000000000")
    assert "DCM-0001-1700000000000" in foreign.value.message


def test_a_link_stops_working_after_its_ttl_but_the_id_gives_a_fresh_one(world: World) -> None:
    stored = world.store(world.alice, "DCM-0001-1700000000000", samples.png())
    old = world.files.describe(world.alice, stored.id).link

    world.clock.advance(TTL)
    with pytest.raises(PermissionDenied) as caught:
        world.files.open_link(*link_parts(old))
    assert caught.value.code == "link_expired"

    fresh = world.files.describe(world.alice, stored.id).link
    found, _ = world.files.open_link(*link_parts(fresh))
    assert found.id == stored.id


def test_a_tampered_link_is_refused(world: World) -> None:
    mine = world.store(world.alice, "DCM-0001-1700000000000", samples.png(seed=1))
    theirs = world.store(world.bob, "DCM-0001-1700000000001", samples.png(seed=2))
    key, expires, signature = link_parts(world.files.describe(world.alice, mine.id).link)

    attempts = [
        (theirs.key, expires, signature),  # my signature on their key
        (key, str(int(expires) + 3600), signature),  # a longer life
        (key, expires, signature[:-1] + ("A" if signature[-1] != "A" else "B")),
        (key, expires, "not-a-signature"),
        (key, "soon", signature),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied) as caught:
            world.files.open_link(*attempt)
        assert caught.value.code == "link_invalid", attempt


def test_a_genuine_link_to_a_key_without_a_row_is_not_found(world: World) -> None:
    key = "berkas/sandbox/TEMP/BRN-0001-1/LOGO/1700000000000-0001.png"
    expires = int((world.clock.now() + TTL).timestamp())

    with pytest.raises(NotFound) as caught:
        world.files.open_link(key, str(expires), world.signer.sign(key, expires))

    assert caught.value.code == "file_not_found"


class FailingDeletes(MemoryBlobStore):
    """A store that cannot delete: an outage between the row's removal and the bytes'."""

    def delete(self, key: str) -> None:
        raise Unavailable("the store is down", code=Code.STORAGE_UNAVAILABLE)


def test_delete_removes_row_bytes_and_links_and_records_it(world: World) -> None:
    stored = world.store(world.alice, "DCM-0001-1700000000000", samples.png(seed=1))
    link = world.files.describe(world.alice, stored.id).link

    caller = Caller(ip="203.0.113.9", user_agent="ui/1", request_id="req-del-1")
    world.files.delete(world.alice, stored.id, caller)

    assert world.db.files.get(stored.id) is None
    with pytest.raises(NotFound):
        list(world.blobs.open(stored.key))
    with pytest.raises(NotFound):
        world.files.open_link(*link_parts(link))
    assert world.db.files.reserved_keys(1) == []  # the bytes are gone: no intent left
    kinds = [e.kind for e in world.db.events.for_file(stored.id)]
    assert kinds == [EventKind.DESCRIBED, EventKind.DELETED]
    event = world.db.events.for_file(stored.id)[-1]
    assert (event.kind, event.client_id, event.ip, event.user_agent, event.request_id) == (
        EventKind.DELETED,
        "BRN-0001-1",
        "203.0.113.9",
        "ui/1",
        "req-del-1",
    )
    world.files.delete(world.alice, stored.id)  # again: the same answer, no new event
    assert len(world.db.events.for_file(stored.id)) == 2
    # Its owner hears that it was deleted, and when; anyone else hears nothing of it.
    with pytest.raises(NotFound, match=r"was deleted at .* \(by partner\)"):
        world.files.describe(world.alice, stored.id)
    with pytest.raises(NotFound, match="No file with id") as other:
        world.files.describe(world.bob, stored.id)
    assert "deleted" not in other.value.message


def test_a_document_on_hold_is_deleted_by_nobody_until_released(world: World) -> None:
    stored = world.store(
        world.alice,
        "DCM-0001-1700000000003",
        samples.png(seed=3),
        retained_until=world.clock.now() + timedelta(days=1),
    )
    world.files.set_hold(stored.id, True, Caller(actor="compliance@host"))

    for delete in (
        lambda: world.files.delete(world.alice, stored.id),
        lambda: world.files.delete_any(stored.id, Caller(actor="root")),
    ):
        with pytest.raises(Conflict) as refused:
            delete()
        assert refused.value.code == "file_on_hold"
    world.clock.advance(timedelta(days=10_000))
    assert world.files.expire(by="node-1") == 0
    assert world.db.files.get(stored.id) is not None

    world.files.set_hold(stored.id, False, Caller(actor="compliance@host"))
    world.files.delete_any(stored.id, Caller(actor="root"))
    assert world.db.files.get(stored.id) is None
    trail = world.db.events.for_file(stored.id)
    assert [(e.kind, e.actor) for e in trail] == [
        (EventKind.HOLD_SET, "compliance@host"),
        (EventKind.HOLD_RELEASED, "compliance@host"),
        (EventKind.DELETED, "root"),
    ]


def test_delete_of_another_partners_file_is_not_found_and_keeps_it(world: World) -> None:
    theirs = world.store(world.bob, "DCM-0001-1700000000001", samples.png(seed=2))

    with pytest.raises(NotFound) as caught:
        world.files.delete(world.alice, theirs.id)

    assert caught.value.code == "file_not_found"
    assert world.db.files.get(theirs.id) == theirs
    assert b"".join(world.blobs.open(theirs.key)) == samples.png(seed=2)


def test_bytes_a_failed_store_kept_are_left_to_the_next_start(world: World) -> None:
    stored = world.store(world.alice, "DCM-0001-1700000000000", samples.png(seed=1))
    failing = FailingDeletes()
    files = FileService(
        world.db.files, failing, world.links, events=world.db.events, clock=world.clock, node_id=1
    )

    files.delete(world.alice, stored.id)

    assert world.db.files.get(stored.id) is None
    # The intent stays for recover_orphans, which removes keys without a row at start.
    assert world.db.files.reserved_keys(1) == [stored.key]


def test_revoking_kills_every_link_issued_so_far_and_new_ones_work(world: World) -> None:
    stored = world.store(world.alice, "DCM-0001-1700000000000", samples.png(seed=1))
    old = [world.files.describe(world.alice, stored.id).link for _ in range(2)]

    revoked = world.files.revoke_links(world.alice, stored.id, Caller(ip="198.51.100.4"))

    for link in old:
        with pytest.raises(PermissionDenied) as caught:
            world.files.open_link(*link_parts(link))
        assert caught.value.code == "link_revoked"  # genuine, of an earlier generation
    forged = link_parts(old[0])
    with pytest.raises(PermissionDenied) as caught:
        world.files.open_link(forged[0], forged[1], "A" * 43)
    assert caught.value.code == "link_invalid"
    for fresh in (revoked.link, world.files.describe(world.alice, stored.id).link):
        found, chunks = world.files.open_link(*link_parts(fresh))
        assert (found.id, b"".join(chunks)) == (stored.id, samples.png(seed=1))
    (event,) = [e for e in world.db.events.for_file(stored.id) if e.kind is EventKind.LINKS_REVOKED]
    assert event.ip == "198.51.100.4"
    with pytest.raises(NotFound):
        world.files.revoke_links(world.bob, stored.id)
