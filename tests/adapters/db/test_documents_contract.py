"""The document store's contract (services/documents.py) on every metadata store (memory,
SQLite, PostgreSQL) and both write protocols: a store that stages (local disk: stage,
commit, publish) and one that cannot (S3's: intent, PUT, commit), modelled here by a
local store that hides its staging methods."""

from __future__ import annotations

from pathlib import Path

import pytest

from berkas.adapters.storage.local import LocalBlobStore
from berkas.core.catalogue import Category
from berkas.core.content import ContentInfo, Kind
from berkas.core.errors import Unavailable
from berkas.core.ids import IdMinter
from berkas.core.models import Caller, EventKind, FileEvent, StoredFile
from berkas.core.ports import BlobStore, Database, FileRepository, StagingBlobStore
from berkas.services.documents import DocumentStore, KeyLayout
from berkas.services.upload_types import Body, UploadTarget
from tests.adapters.db.test_contract import T0, make_client
from tests.support import samples
from tests.support.fakes import FakeClock

NODE = 7
INFO = ContentInfo(kind=Kind.JPEG, width=64, height=48, pages=None)
TARGET = UploadTarget(
    category=Category.PHOTO_PROOF,
    code=None,
    max_bytes=10_000_000,
    label="PHOTO_PROOF",
    kinds=frozenset({Kind.JPEG}),
)


class PutOnly:
    """A local store seen through ``BlobStore`` alone: no staging, as S3 (one PUT)."""

    def __init__(self, inner: LocalBlobStore) -> None:
        self._inner = inner
        self.put_file = inner.put_file
        self.open = inner.open
        self.delete = inner.delete
        self.check = inner.check


class FailingAdd:
    """The metadata store, with ``add`` failing as a lost connection would."""

    def __init__(self, files: FileRepository) -> None:
        self._files = files

    def add(self, stored: StoredFile, event: FileEvent | None = None) -> str | None:
        raise Unavailable("the database went away")

    def __getattr__(self, name: str) -> object:
        return getattr(self._files, name)


class Site:
    def __init__(self, database: Database, root: Path, *, staging: bool) -> None:
        self.database = database
        self.local = LocalBlobStore(root / "blobs")
        self.blobs: BlobStore = self.local if staging else PutOnly(self.local)
        self.clock = FakeClock(T0)
        self.spool = root / "spool"
        self.spool.mkdir()
        self.minted = 0
        database.clients.add(make_client())
        self.client = make_client()

    def documents(
        self, files: FileRepository | None = None, minter: IdMinter | None = None
    ) -> DocumentStore:
        return DocumentStore(
            files=files or self.database.files,
            blobs=self.blobs,
            clock=self.clock,
            node_id=NODE,
            layout=KeyLayout(
                minter=minter or IdMinter(NODE, self._next_ms),
                key_prefix="berkas",
                env="sandbox",
                node_id=NODE,
            ),
        )

    def _next_ms(self) -> int:
        self.minted += 1
        return 1_700_000_000_000 + self.minted

    def body(self, content: bytes) -> Body:
        path = self.spool / f"upload-{len(list(self.spool.iterdir()))}.part"
        path.write_bytes(content)
        return Body(path, len(content), samples.sha256(content))

    def stored_keys(self) -> set[str]:
        root = self.local.root
        return {
            str(p.relative_to(root))
            for p in root.rglob("*")
            if p.is_file() and ".tmp" not in p.relative_to(root).parts
        }

    def temp(self) -> list[str]:
        return sorted(p.name for p in (self.local.root / ".tmp").iterdir())

    def read(self, key: str) -> bytes:
        return b"".join(self.blobs.open(key))


@pytest.fixture(params=["staging", "put-only"])
def site(request: pytest.FixtureRequest, database: Database, tmp_path: Path) -> Site:
    return Site(database, tmp_path, staging=request.param == "staging")


def test_the_staging_protocol_is_chosen_by_what_the_store_can_do(site: Site) -> None:
    assert isinstance(site.blobs, StagingBlobStore) == isinstance(site.blobs, LocalBlobStore)


def test_a_stored_document_has_its_row_event_and_bytes_and_nothing_else(site: Site) -> None:
    content = samples.jpeg(seed=1)

    done = site.documents().store(site.client, TARGET, site.body(content), INFO, Caller())

    stored = done.stored
    assert done.duplicate_of is None
    assert site.database.files.get(stored.id) == stored
    assert (
        stored.key
        == f"berkas/sandbox/TEMP/{site.client.client_id}/PHOTO_PROOF/{1_700_000_000_001}-0007.jpg"
    )
    assert site.read(stored.key) == content
    assert [e.kind for e in site.database.events.for_file(stored.id)] == [EventKind.UPLOADED]
    # No intent, no staged or temporary file is left once the answer is given.
    assert site.database.files.reserved_keys(NODE) == []
    assert site.temp() == []
    assert site.stored_keys() == {stored.key}


def test_the_duplicate_lookup_comes_back_with_the_row(site: Site) -> None:
    documents = site.documents()
    content = samples.jpeg(seed=2)
    first = documents.store(site.client, TARGET, site.body(content), INFO, Caller()).stored
    other = documents.store(site.client, TARGET, site.body(samples.jpeg(seed=3)), INFO, Caller())

    again = documents.store(site.client, TARGET, site.body(content), INFO, Caller())

    assert other.duplicate_of is None
    assert again.duplicate_of == first.id
    assert again.stored.id != first.id
    assert site.read(again.stored.key) == content


def test_a_failed_row_leaves_no_bytes_no_intent_and_no_staged_file(site: Site) -> None:
    body = site.body(samples.jpeg(seed=4))

    with pytest.raises(Unavailable):
        site.documents(files=FailingAdd(site.database.files)).store(  # type: ignore[arg-type]
            site.client, TARGET, body, INFO, Caller()
        )

    assert site.stored_keys() == set()
    assert site.temp() == []
    assert site.database.files.reserved_keys(NODE) == []


def test_a_taken_id_is_minted_again_with_the_bytes_intact(site: Site) -> None:
    # A clock step back across a restart: the restarted node mints the first one's id
    # (another category, so only the row can notice), then a fresh one.
    before = site.documents(minter=IdMinter(NODE, lambda: 1_700_000_000_000))
    clock = iter([1_700_000_000_000, 1_700_000_000_009])
    after = site.documents(minter=IdMinter(NODE, lambda: next(clock)))
    first_bytes, second_bytes = samples.jpeg(seed=5), samples.jpeg(seed=6)
    logo = UploadTarget(Category.LOGO, None, 10_000_000, "LOGO", frozenset({Kind.JPEG}))

    first = before.store(site.client, TARGET, site.body(first_bytes), INFO, Caller()).stored
    second = after.store(site.client, logo, site.body(second_bytes), INFO, Caller()).stored

    assert second.id.endswith("1700000000009")
    assert site.read(first.key) == first_bytes
    assert site.read(second.key) == second_bytes
    assert site.stored_keys() == {first.key, second.key}
    assert site.temp() == []


def test_remove_takes_the_row_then_the_bytes(site: Site) -> None:
    documents = site.documents()
    stored = documents.store(site.client, TARGET, site.body(samples.jpeg()), INFO, Caller()).stored
    deleted = FileEvent(stored.id, stored.client_id, EventKind.DELETED, T0)

    assert documents.remove(stored, deleted) == stored
    assert documents.remove(stored, deleted) is None

    assert site.database.files.get(stored.id) is None
    assert site.stored_keys() == set()
    assert site.database.files.reserved_keys(NODE) == []


def test_recover_removes_objects_no_row_names(site: Site) -> None:
    documents = site.documents()
    kept = documents.store(site.client, TARGET, site.body(samples.jpeg()), INFO, Caller()).stored
    # A crash between the PUT and the row (or the row's removal and the object's).
    orphan = f"berkas/sandbox/TEMP/{site.client.client_id}/LOGO/1-0007.jpg"
    site.database.files.reserve_key(orphan, NODE, T0)
    site.local.put_file(orphan, site.body(samples.jpeg(seed=9)).path, "image/jpeg")
    site.database.files.reserve_key("another/node/object.jpg", NODE + 1, T0)

    assert documents.recover() == 1

    assert site.stored_keys() == {kept.key}
    assert site.database.files.reserved_keys(NODE) == []
    assert site.database.files.reserved_keys(NODE + 1) == ["another/node/object.jpg"]
    assert documents.recover() == 0


@pytest.mark.parametrize("committed", [True, False])
def test_a_crash_between_stage_and_publish_is_finished_at_start(
    database: Database, tmp_path: Path, committed: bool
) -> None:
    site = Site(database, tmp_path, staging=True)
    content = samples.jpeg(seed=11)
    stored = StoredFile(
        id="DCM-0007-1700000000042",
        client_id=site.client.client_id,
        category="PHOTO_PROOF",
        code=None,
        key=f"berkas/sandbox/TEMP/{site.client.client_id}/PHOTO_PROOF/1700000000042-0007.jpg",
        content_type="image/jpeg",
        size=len(content),
        sha256=samples.sha256(content),
        width=64,
        height=48,
        created_at=T0,
    )
    # The bytes are staged; the kill came before (or after) the row's commit, and
    # before the publish. The start's cleanup of .tmp keeps what is staged.
    site.local.stage(stored.id, site.body(content).path)
    if committed:
        database.files.add(stored, FileEvent(stored.id, stored.client_id, EventKind.UPLOADED, T0))
    assert site.local.cleanup_temp() == 0

    published, dropped = site.documents().recover_staged()

    assert (published, dropped) == ((1, 0) if committed else (0, 1))
    assert site.temp() == []
    if committed:
        assert site.stored_keys() == {stored.key}
        assert site.read(stored.key) == content
    else:
        assert site.stored_keys() == set()
    assert site.documents().recover_staged() == (0, 0)


def test_a_worker_recovers_only_what_its_own_number_staged(
    database: Database, tmp_path: Path
) -> None:
    # docs/design.md 5.6: a restarted worker clears its leftovers while the node's other
    # workers serve, so their staged uploads (between stage and publish) are not its own.
    site = Site(database, tmp_path, staging=True)
    staged: dict[str, StoredFile] = {}
    for node, ms, committed in [(7, 41, True), (7, 42, False), (8, 43, True), (8, 44, False)]:
        content = samples.jpeg(seed=ms)
        stored = StoredFile(
            id=f"DCM-{node:04d}-17000000000{ms}",
            client_id=site.client.client_id,
            category="PHOTO_PROOF",
            code=None,
            key=f"berkas/sandbox/TEMP/{site.client.client_id}/PHOTO_PROOF/{ms}-{node:04d}.jpg",
            content_type="image/jpeg",
            size=len(content),
            sha256=samples.sha256(content),
            width=64,
            height=48,
            created_at=T0,
        )
        site.local.stage(stored.id, site.body(content).path)
        if committed:
            event = FileEvent(stored.id, stored.client_id, EventKind.UPLOADED, T0)
            database.files.add(stored, event)
        staged[stored.id] = stored
    theirs = sorted(f"{name}.staged" for name in staged if name.startswith("DCM-0008-"))

    assert site.documents().recover_staged(7) == (1, 1)

    assert site.stored_keys() == {staged["DCM-0007-1700000000041"].key}
    assert site.temp() == theirs  # node 8's, published nor dropped
    assert site.documents().recover_staged(7) == (0, 0)
    assert site.documents().recover_staged(8) == (1, 1)
    assert site.temp() == []
    published = ("DCM-0007-1700000000041", "DCM-0008-1700000000043")
    assert site.stored_keys() == {staged[name].key for name in published}
