"""``berkas files upgrade`` as a use case, over the in-memory twins: documents an older
release stored get encrypted, a retention date and (only when asked) stripped; what is
done is skipped; a concurrent delete or revoke wins; a failure leaves the old document."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from berkas.adapters.db.memory import MemoryDatabase
from berkas.adapters.sealing import MasterKey, SealedDataKeys, Sealer
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.core import envelope, metadata
from berkas.core.codes import Code
from berkas.core.content import ImageLimits, Kind
from berkas.core.errors import Unavailable
from berkas.core.links import LinkSigner
from berkas.core.models import Client, EventKind, StoredFile
from berkas.services.files import FileService
from berkas.services.links import LinkService
from berkas.services.nodes import NodeLeases
from berkas.services.upgrade import UPGRADE_TASK, UpgradeBusy, UpgradeService
from tests.support import samples
from tests.support.fakes import FakeClock

YEAR = timedelta(days=365)
SELLER = "BRN-0001-1"


class Store(MemoryBlobStore):
    """The in-memory store with hooks a test sets to fail or race a step."""

    def __init__(self) -> None:
        super().__init__()
        self.before_put: Callable[[str], None] = lambda key: None
        self.before_delete: Callable[[str], None] = lambda key: None

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        self.before_put(key)
        super().put_file(key, path, content_type)

    def delete(self, key: str) -> None:
        self.before_delete(key)
        super().delete(key)

    @property
    def keys(self) -> list[str]:
        return sorted(self._blobs)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.spool = tmp_path / "spool"
        self.spool.mkdir()
        self.clock = FakeClock()
        self.db = MemoryDatabase()
        self.blobs = Store()
        self.data_keys = SealedDataKeys(Sealer(MasterKey(bytes(range(32))), source="test"))
        self.db.clients.add(Client(SELLER, "SK-1", True, self.clock.now()))
        self.links = LinkService(
            LinkSigner(b"s" * 32), self.clock, base_url="http://b.test", ttl=timedelta(hours=1)
        )
        self.reader = FileService(
            self.db.files,
            self.blobs,
            self.links,
            events=self.db.events,
            clock=self.clock,
            node_id=1,
            data_keys=self.data_keys,
        )

    def upgrader(
        self, *, encrypt: bool = True, retention: dict[str, timedelta] | None = None
    ) -> UpgradeService:
        spans = {"DOCUMENT": YEAR} if retention is None else retention
        return UpgradeService(
            files=self.db.files,
            blobs=self.blobs,
            clock=self.clock,
            tasks=self.db.tasks,
            nodes=NodeLeases(self.db.leases, self.clock, holder="upgrade", label="test run"),
            holder="run-1",
            spool_dir=self.spool,
            data_keys=self.data_keys,
            encrypt=encrypt,
            retention=spans.get,
            keep_metadata=frozenset({"LOGO"}),
            image_limits=ImageLimits(max_pixels=40_000_000, max_side=12_000),
        )

    def old(
        self, file_id: str, data: bytes, category: str = "DOCUMENT", **fields: Any
    ) -> StoredFile:
        """A document as a release before encryption, stripping and retention stored it."""
        kind = {b"%PDF": Kind.PDF, b"\x89PNG": Kind.PNG}.get(data[:4], Kind.JPEG)
        key = f"berkas/sandbox/TEMP/{SELLER}/{category}/{file_id[-13:]}-0001.{kind.extension}"
        path = self.tmp_path / f"{file_id}.bin"
        path.write_bytes(data)
        self.blobs.put_file(key, path, kind.mime)
        stored = StoredFile(
            id=file_id,
            client_id=SELLER,
            category=category,
            code=None,
            key=key,
            content_type=kind.mime,
            size=len(data),
            sha256=samples.sha256(data),
            width=96,
            height=64,
            created_at=self.clock.now() - timedelta(days=30),
            metadata_checked=False,
            **fields,
        )
        self.db.files.add(stored)
        return stored

    def row(self, file_id: str) -> StoredFile:
        got = self.db.files.get(file_id)
        assert got is not None
        return got

    def served(self, file_id: str) -> bytes:
        """What a fresh link to the document gives, as GET /file then the link would."""
        stored = self.row(file_id)
        link = self.links.issue(stored)
        _, chunks = self.reader.open_link(*_parts(link.url))
        return b"".join(chunks)

    def stored_bytes(self, file_id: str) -> bytes:
        return b"".join(self.blobs.open(self.row(file_id).key))

    def upgraded_events(self, file_id: str) -> list[str | None]:
        return [e.detail for e in self.db.events.for_file(file_id) if e.kind is EventKind.UPGRADED]


def _parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path.removeprefix("/links/"), query["expires"][0], query["signature"][0]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_documents_in_clear_are_encrypted_under_a_new_key_and_serve_the_same_bytes(
    world: World,
) -> None:
    photo = samples.gps_jpeg(seed=1)
    pdf = samples.pdf()
    old_photo = world.old("DCM-0001-1700000000001", photo)
    world.old("DCM-0001-1700000000002", pdf)

    report = world.upgrader().run()

    assert (report.encrypted, report.stripped, report.failed) == (2, 0, [])
    row = world.row(old_photo.id)
    assert row.key != old_photo.key
    assert row.key.startswith(old_photo.key.removesuffix(".jpg") + "-u")
    assert row.data_key is not None
    assert row.data_key.startswith("sealed:v1:")
    stored = world.stored_bytes(old_photo.id)
    assert stored.startswith(envelope.MAGIC)
    assert photo[100:140] not in stored
    # Same bytes, same sha256: a partner's records stay true; the GPS is untouched.
    assert world.served(old_photo.id) == photo
    assert world.served("DCM-0001-1700000000002") == pdf
    assert (row.sha256, row.size, row.metadata_checked) == (old_photo.sha256, len(photo), False)
    # The old objects are gone and no intent is left behind.
    assert old_photo.key not in world.blobs.keys
    assert len(world.blobs.keys) == 2
    assert world.db.files.reserved_keys(9999) == []
    assert world.upgraded_events(old_photo.id)[-1] == "encrypted"


def test_retention_is_stamped_from_upload_time_where_the_policy_gives_one(world: World) -> None:
    doc = world.old("DCM-0001-1700000000001", samples.jpeg(seed=2))
    logo = world.old("DCM-0001-1700000000002", samples.png(seed=2), category="LOGO")

    report = world.upgrader(encrypt=False).run()

    assert report.stamped == 1
    assert world.row(doc.id).retained_until == doc.created_at + YEAR
    assert world.row(logo.id).retained_until is None  # LOGO: kept until deleted
    assert world.upgraded_events(doc.id) == ["retention stamped: 365 days from upload"]
    assert report.encrypted == 0
    assert world.row(doc.id).data_key is None  # encryption at rest is off


def test_metadata_is_stripped_only_when_asked(world: World) -> None:
    photo = samples.gps_jpeg(seed=3)
    old = world.old("DCM-0001-1700000000001", photo)

    world.upgrader().run()
    assert metadata.find_metadata(_written(world, old.id), Kind.JPEG) != ()

    report = world.upgrader().run(strip=True)

    assert (report.encrypted, report.stripped) == (0, 1)
    row = world.row(old.id)
    served = world.served(old.id)
    assert "GPS" in row.metadata_removed
    assert row.metadata_checked
    assert (row.size, row.sha256) == (len(served), samples.sha256(served))
    assert served != photo
    assert metadata.find_metadata(_written(world, old.id), Kind.JPEG) == ()
    assert world.row(old.id).data_key is not None  # still encrypted, under a new key
    assert world.upgraded_events(old.id)[-1] == "stripped COMMENT,EXIF,GPS"


def test_one_run_encrypts_and_strips_in_one_rewrite(world: World) -> None:
    old = world.old("DCM-0001-1700000000001", samples.gps_jpeg(seed=4))
    pdf = world.old("DCM-0001-1700000000002", samples.pdf())
    logo = world.old("DCM-0001-1700000000003", samples.gps_jpeg(seed=5), category="LOGO")

    report = world.upgrader().run(strip=True)

    assert (report.encrypted, report.stripped, report.checked) == (3, 1, 2)
    assert world.upgraded_events(old.id)[-1] == "encrypted; stripped COMMENT,EXIF,GPS"
    # A PDF is stored as sent, a LOGO keeps its metadata: checked, not changed.
    assert world.served(pdf.id) == samples.pdf()
    assert world.row(pdf.id).metadata_checked
    assert world.served(logo.id) == samples.gps_jpeg(seed=5)
    assert world.row(logo.id).metadata_checked
    assert len(world.blobs.keys) == 3


def test_an_encrypted_document_with_nothing_to_strip_is_marked_in_place(world: World) -> None:
    plain = samples.jpeg(seed=6)
    old = world.old("DCM-0001-1700000000001", plain)
    world.upgrader().run()
    encrypted = world.row(old.id)

    report = world.upgrader().run(strip=True)

    assert (report.checked, report.stripped, report.encrypted) == (1, 0, 0)
    row = world.row(old.id)
    assert row == dataclasses.replace(encrypted, metadata_checked=True)
    assert world.served(old.id) == plain


def test_a_second_run_does_nothing(world: World) -> None:
    world.old("DCM-0001-1700000000001", samples.gps_jpeg(seed=7))
    world.old("DCM-0001-1700000000002", samples.png(seed=7))
    world.upgrader().run(strip=True)
    rows = [world.row(f"DCM-0001-170000000000{n}") for n in (1, 2)]
    events = len(world.db.events.export(since=None, client_id=None, after_id=0, limit=1000))
    keys = world.blobs.keys

    report = world.upgrader().run(strip=True)

    assert report.summary() == (
        "encrypted 0, stripped 0, checked 0, stamped 0, skipped 0, failed 0"
    )
    assert [world.row(r.id) for r in rows] == rows
    assert world.blobs.keys == keys
    assert len(world.db.events.export(since=None, client_id=None, after_id=0, limit=1000)) == events


def test_a_delete_during_the_upgrade_wins(world: World) -> None:
    old = world.old("DCM-0001-1700000000001", samples.jpeg(seed=8))

    def partner_deletes(key: str) -> None:
        world.reader.delete_any(old.id)

    world.blobs.before_put = partner_deletes

    report = world.upgrader().run()

    assert (report.encrypted, report.skipped, report.failed) == (0, 1, [])
    assert world.db.files.get(old.id) is None
    # Neither the new object nor the old one is left, nor an intent of this run.
    assert world.blobs.keys == []
    assert world.db.files.reserved_keys(9999) == []


def test_a_revoke_during_the_upgrade_wins_and_the_document_is_done_after_it(
    world: World,
) -> None:
    data = samples.jpeg(seed=9)
    old = world.old("DCM-0001-1700000000001", data)
    revoked: list[str] = []

    def partner_revokes(key: str) -> None:
        if not revoked:
            client = world.db.clients.get(SELLER)
            assert client is not None
            view = world.reader.revoke_links(client, old.id)
            revoked.append(view.link.url)

    world.blobs.before_put = partner_revokes

    report = world.upgrader().run()

    assert (report.encrypted, report.failed) == (1, [])
    row = world.row(old.id)
    assert row.link_generation == 1
    # Bound to the revoked generation: a fresh link opens it, the revoked ones do not.
    assert world.served(old.id) == data
    assert len(world.blobs.keys) == 1


def test_a_store_failure_leaves_the_old_document_readable_and_is_reported(world: World) -> None:
    first = world.old("DCM-0001-1700000000001", samples.jpeg(seed=10))
    second = world.old("DCM-0001-1700000000002", samples.jpeg(seed=11))

    def store_fails_for_the_first(key: str) -> None:
        if "1700000000001" in key:
            raise Unavailable("the store is down", code=Code.STORAGE_UNAVAILABLE)

    world.blobs.before_put = store_fails_for_the_first

    report = world.upgrader().run()

    assert report.encrypted == 1
    assert report.failed == [(first.id, "the store is down (storage_unavailable)")]
    assert world.row(first.id) == dataclasses.replace(first, retained_until=first.created_at + YEAR)
    assert world.served(first.id) == samples.jpeg(seed=10)
    assert world.row(second.id).data_key is not None
    assert sorted(world.blobs.keys) == sorted([first.key, world.row(second.id).key])
    assert world.db.files.reserved_keys(9999) == []


def test_a_crash_between_write_and_swap_is_cleaned_by_the_next_run(world: World) -> None:
    old = world.old("DCM-0001-1700000000001", samples.jpeg(seed=12))

    class Crash(BaseException):
        pass

    original = world.db.files.upgrade

    def crash(*args: Any) -> bool:
        raise Crash

    world.db.files.upgrade = crash  # type: ignore[method-assign,assignment]
    with pytest.raises(Crash):
        world.upgrader().run()
    world.db.files.upgrade = original  # type: ignore[method-assign]
    # The process "died" after its new object was written: the old one still serves.
    assert world.row(old.id) == dataclasses.replace(old, retained_until=old.created_at + YEAR)
    assert world.served(old.id) == samples.jpeg(seed=12)

    report = world.upgrader().run()

    assert report.encrypted == 1
    assert world.blobs.keys == [world.row(old.id).key]
    assert world.db.files.reserved_keys(9999) == []


def test_an_old_object_the_store_would_not_delete_is_removed_by_the_next_run(
    world: World,
) -> None:
    old = world.old("DCM-0001-1700000000001", samples.jpeg(seed=13))

    def old_object_sticks(key: str) -> None:
        if key == old.key:
            raise Unavailable("the store is down", code=Code.STORAGE_UNAVAILABLE)

    world.blobs.before_delete = old_object_sticks
    assert world.upgrader().run().encrypted == 1
    assert old.key in world.blobs.keys
    assert world.db.files.reserved_keys(9999) == [old.key]
    world.blobs.before_delete = lambda key: None

    world.upgrader().run()

    assert world.blobs.keys == [world.row(old.id).key]
    assert world.db.files.reserved_keys(9999) == []


def test_a_document_on_legal_hold_is_encrypted_but_never_stripped(world: World) -> None:
    photo = samples.gps_jpeg(seed=14)
    old = world.old("DCM-0001-1700000000001", photo, legal_hold=True)

    report = world.upgrader().run(strip=True)

    assert (report.encrypted, report.stripped) == (1, 0)
    assert world.served(old.id) == photo
    assert not world.row(old.id).metadata_checked


def test_an_object_that_does_not_match_its_row_is_left_alone(world: World) -> None:
    old = world.old("DCM-0001-1700000000001", samples.jpeg(seed=15))
    path = world.tmp_path / "other"
    path.write_bytes(samples.jpeg(seed=16))
    world.blobs.delete(old.key)
    world.blobs.put_file(old.key, path, "image/jpeg")

    report = world.upgrader().run()

    assert [file_id for file_id, _ in report.failed] == [old.id]
    assert "does not match its recorded size and sha256" in report.failed[0][1]
    assert world.row(old.id).data_key is None


def test_limit_and_progress(world: World) -> None:
    for n in range(1, 4):
        world.old(f"DCM-0001-170000000000{n}", samples.jpeg(seed=n))
    seen: list[tuple[int, int | None]] = []

    first = world.upgrader().run(limit=2, progress=lambda done, total: seen.append((done, total)))

    assert first.encrypted == 2
    assert seen == [(0, 2), (1, 2), (2, 2)]
    assert world.upgrader().pending(strip=False) == 1
    assert world.upgrader().run().encrypted == 1


def test_one_run_at_a_time(world: World) -> None:
    world.old("DCM-0001-1700000000001", samples.jpeg(seed=17))
    now = world.clock.now()
    assert world.db.tasks.acquire(UPGRADE_TASK, "another run", now + timedelta(minutes=2), now)

    with pytest.raises(UpgradeBusy, match="another berkas files upgrade is running"):
        world.upgrader().run()

    assert world.row("DCM-0001-1700000000001").data_key is None


def test_the_run_leases_the_highest_free_node_number_and_gives_it_back(world: World) -> None:
    world.old("DCM-0001-1700000000001", samples.jpeg(seed=18))
    seen: list[list[int]] = []
    world.blobs.before_put = lambda key: seen.append(
        [lease.node_id for lease in world.db.leases.held(world.clock.now())]
    )

    world.upgrader().run()

    assert seen == [[9999]]
    assert world.db.leases.held(world.clock.now()) == []
    assert world.row("DCM-0001-1700000000001").key.endswith("-9999.jpg")


def _written(world: World, file_id: str) -> Path:
    path = world.tmp_path / f"{file_id}.served"
    path.write_bytes(world.served(file_id))
    return path


def test_a_swap_that_committed_but_raised_leaves_what_the_next_run_cleans(world: World) -> None:
    data = samples.jpeg(seed=19)
    old = world.old("DCM-0001-1700000000001", data)
    original = world.db.files.upgrade

    def commits_then_drops(*args: Any) -> bool:
        original(*args)
        raise Unavailable("connection lost during commit", code=Code.DATABASE_UNAVAILABLE)

    world.db.files.upgrade = commits_then_drops  # type: ignore[method-assign,assignment]
    report = world.upgrader().run()
    world.db.files.upgrade = original  # type: ignore[method-assign]

    assert [file_id for file_id, _ in report.failed] == [old.id]
    # Neither object was removed on a guess: the row names the new one, which serves.
    assert old.key in world.blobs.keys
    assert world.served(old.id) == data

    world.upgrader().run()

    assert world.blobs.keys == [world.row(old.id).key]
    assert world.db.files.reserved_keys(9999) == []
