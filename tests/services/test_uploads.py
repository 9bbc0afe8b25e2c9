"""The upload use case: field validation, content rules, atomic blob-then-row, ids and keys."""

from __future__ import annotations

import io
import json
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from PIL import Image

from berkas.adapters.db.memory import MemoryDatabase
from berkas.adapters.storage.local import LocalBlobStore
from berkas.adapters.storage.memory import MemoryBlobStore
from berkas.core import catalogue as catalogue_module
from berkas.core.catalogue import Catalogue, Category, DocumentCode
from berkas.core.codes import Code
from berkas.core.content import ImageLimits
from berkas.core.egress import FetchResult
from berkas.core.errors import (
    Conflict,
    FetchRefused,
    InvalidRequest,
    PayloadTooLarge,
    Unavailable,
    UnsupportedContent,
)
from berkas.core.ids import IdMinter, MintedId
from berkas.core.links import LinkSigner
from berkas.core.models import Client, StoredFile, UpgradeBacklog
from berkas.core.ports import BlobStore, Fetcher, FetchSink, FileRepository
from berkas.services.documents import DocumentStore, KeyLayout
from berkas.services.idempotency import IdempotentUploads
from berkas.services.links import LinkService
from berkas.services.spool import Spool
from berkas.services.upload_types import UploadResult
from berkas.services.uploads import UploadService
from tests.support import samples
from tests.support.fakes import FakeClock

CLIENT = "BRN-0001-10791114622547"
ID_SHAPE = re.compile(r"^[A-Z]{3}-\d{4}-\d{13}$")


class FixedMinter(IdMinter):
    """Mints the ids it was given, in order: a clock that stepped back across a restart."""

    def __init__(self, *epochs_ms: int) -> None:
        super().__init__(7, lambda: 0)
        self._epochs = list(epochs_ms)

    def mint(self, prefix: str) -> MintedId:
        epoch_ms = self._epochs.pop(0)
        return MintedId(id=f"{prefix}-0007-{epoch_ms:013d}", epoch_ms=epoch_ms)


class FailingFiles:
    """A ``FileRepository`` whose inserts fail, as a database dropping the connection would."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.reserved: set[str] = set()

    def reserve_key(self, key: str, node_id: int, created_at: object) -> None:
        self.reserved.add(key)

    def release_key(self, key: str) -> None:
        self.reserved.discard(key)

    def reserved_keys(self, node_id: int) -> list[str]:
        return sorted(self.reserved)

    def add(self, stored: StoredFile, event: object = None) -> None:
        raise self.error

    # Nothing is ever stored here, so every lookup and change finds nothing.
    def remove(self, file_id: str, node_id: int, event: object) -> StoredFile | None:
        return None

    def listed(self, client_id: str | None, match: object, **page: object) -> list[StoredFile]:
        return []

    def position_of(self, client_id: str | None, file_id: str) -> None:
        return None

    def revoke_links(
        self, file_id: str, event: object, *, generation: int, data_key: str | None
    ) -> int | None:
        return None

    def set_hold(self, file_id: str, hold: bool, event: object) -> bool:
        return False

    def expired(self, now: object, limit: int) -> list[StoredFile]:
        return []

    def duplicate_of(self, client_id: str, category: str, sha256: str) -> str | None:
        return None

    def get(self, file_id: str) -> StoredFile | None:
        return None

    def get_by_key(self, key: str) -> StoredFile | None:
        return None

    def backlog(self) -> UpgradeBacklog:
        return UpgradeBacklog(0, 0, {})

    def stamp_retention(
        self, category: str, span: object, at: object, actor: str | None = None
    ) -> int:
        return 0

    def outdated(
        self, *, after: str, limit: int, in_clear: bool, unchecked: bool
    ) -> list[StoredFile]:
        return []

    def upgrade(
        self, stored: StoredFile, upgraded: StoredFile, node_id: int, event: object
    ) -> bool:
        return False


class BodyFetcher:
    """A ``Fetcher`` answering every URL with ``body`` in chunks, announcing its length
    first when ``announce`` (a Content-Length); records how many bytes the sink took."""

    def __init__(self, body: bytes, *, announce: bool = False, chunk: int = 65536) -> None:
        self.body = body
        self.announce = announce
        self.chunk = chunk
        self.delivered = 0

    def _chunks(self) -> Iterable[bytes]:
        return (self.body[i : i + self.chunk] for i in range(0, len(self.body), self.chunk))

    async def fetch(self, url: str, sink: FetchSink) -> FetchResult:
        if self.announce:
            sink.expect(len(self.body))
        for piece in self._chunks():
            await sink.write(piece)
            self.delivered += len(piece)
        return FetchResult(url=url, status=200, content_type=None, size=len(self.body))


class Harness:
    def __init__(self, tmp_path: Path, *, local_blobs: bool = False) -> None:
        self.clock = FakeClock()
        self.db = MemoryDatabase()
        self.client = Client(CLIENT, "SK-secret", True, self.clock.now())
        self.db.clients.add(self.client)
        self.blob_root = tmp_path / "blobs"
        self.blobs: BlobStore = LocalBlobStore(self.blob_root) if local_blobs else MemoryBlobStore()
        self.spool_dir = tmp_path / "spool"
        self.spool_dir.mkdir()
        self.catalogue = Catalogue.load()

    def service(
        self,
        *,
        files: FileRepository | None = None,
        minter: IdMinter | None = None,
        env: str = "sandbox",
        node_id: int = 7,
        fetcher: Fetcher | None = None,
    ) -> UploadService:
        documents = DocumentStore(
            files=files or self.db.files,
            blobs=self.blobs,
            clock=self.clock,
            node_id=node_id,
            layout=KeyLayout(
                minter=minter
                or IdMinter(node_id, lambda: int(self.clock.now().timestamp() * 1000)),
                key_prefix="berkas",
                env=env,
                node_id=node_id,
            ),
        )
        return UploadService(
            catalogue=self.catalogue,
            documents=documents,
            links=LinkService(
                LinkSigner(b"k" * 32),
                self.clock,
                base_url="http://berkas.test",
                ttl=timedelta(minutes=60),
            ),
            idempotency=IdempotentUploads(self.db.replays, self.clock),
            spool_dir=self.spool_dir,
            image_limits=ImageLimits(),
            fetcher=fetcher,
        )

    def spooled(self) -> list[Path]:
        return list(self.spool_dir.iterdir())

    def stored_blobs(self) -> list[Path]:
        return [p for p in self.blob_root.rglob("*") if p.is_file() and ".tmp" not in p.parts]


def fields(category: str | None, code: str | None = None) -> dict[str, str]:
    given = {"category": category, "code": code}
    return {name: value for name, value in given.items() if value is not None}


def upload(
    service: UploadService,
    client: Client,
    data: bytes,
    category: str = "DOCUMENT",
    code: str | None = "KTP",
    *,
    key: str | None = None,
) -> UploadResult:
    """A multipart upload as the route makes it: the spool, written, then the use case."""
    form = fields(category, code)

    async def run() -> UploadResult:
        spool = service.open_spool(form)
        spool.write(data)
        return await service.upload_file(client, form, spool, key)

    return anyio.run(run)


def upload_url(
    service: UploadService, client: Client, category: str, code: str | None = None
) -> UploadResult:
    form = {**fields(category, code), "file_url": "https://files.example/document"}
    return anyio.run(service.upload_url, client, form, None)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.mark.parametrize("category", [None, "", "  "])
def test_a_missing_category_is_named(h: Harness, category: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        h.service().target(fields(category))

    assert caught.value.code == "category_missing"
    assert "category" in caught.value.message
    assert "PHOTO_PROOF" in caught.value.message


@pytest.mark.parametrize("category", ["PASSPORT", "photo_proof", "DOCUMENTS"])
def test_an_unknown_category_lists_the_accepted_ones(h: Harness, category: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        h.service().target(fields(category))

    assert caught.value.code == "category_invalid"
    assert f'"{category}"' in caught.value.message
    assert all(member.value in caught.value.message for member in Category)


@pytest.mark.parametrize("code", [None, "", " "])
def test_a_document_needs_a_code(h: Harness, code: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        h.service().target(fields("DOCUMENT", code))

    assert caught.value.code == "code_missing"
    assert "code" in caught.value.message
    assert "KTP" in caught.value.message


def test_an_unknown_document_code_lists_the_accepted_ones(h: Harness) -> None:
    with pytest.raises(InvalidRequest) as caught:
        h.service().target(fields("DOCUMENT", "SIM"))

    assert caught.value.code == "code_invalid"
    assert '"SIM"' in caught.value.message
    assert all(member.value in caught.value.message for member in DocumentCode)


@pytest.mark.parametrize("category", [c.value for c in Category if c is not Category.DOCUMENT])
def test_code_is_ignored_outside_documents(h: Harness, category: str) -> None:
    target = h.service().target(fields(category, "NOT_A_CODE"))

    assert target.category.value == category
    assert target.code is None


def test_a_document_upload_is_stored_with_its_metadata(h: Harness) -> None:
    data = samples.jpeg(64, 48)

    result = upload(h.service(), h.client, data)

    stored = result.stored
    assert ID_SHAPE.match(stored.id)
    assert stored.id.startswith("DCM-0007-")
    assert (stored.category, stored.code) == ("DOCUMENT", "KTP")
    assert (stored.content_type, stored.size) == ("image/jpeg", len(data))
    assert stored.sha256 == samples.sha256(data)
    assert (stored.width, stored.height) == (64, 48)
    assert h.db.files.get(stored.id) == stored
    assert b"".join(h.blobs.open(stored.key)) == data
    assert result.link.url.startswith(f"http://berkas.test/links/{stored.key}?expires=")
    assert h.spooled() == []


def test_the_object_key_follows_doku_layout_with_the_node(h: Harness) -> None:
    stored = upload(h.service(env="production", node_id=42), h.client, samples.png()).stored

    epoch_ms = stored.id.rsplit("-", 1)[1]
    assert stored.id.startswith("DCM-0042-")
    assert stored.key == (f"berkas/production/TEMP/{CLIENT}/DOCUMENT/{int(epoch_ms)}-0042.png")


def test_owner_liveness_ids_start_with_cnt(h: Harness) -> None:
    stored = upload(h.service(), h.client, samples.jpeg(), "OWNER_LIVENESS", None).stored

    assert stored.id.startswith("CNT-0007-")
    assert "/OWNER_LIVENESS/" in stored.key
    assert stored.code is None


@pytest.mark.parametrize("category", ["DOCUMENT", "SERVICE_AGREEMENT", "BANK_ACCOUNT"])
def test_pdf_is_accepted_where_doku_lists_it(h: Harness, category: str) -> None:
    stored = upload(h.service(), h.client, samples.pdf(), category, "KTP")

    assert stored.stored.content_type == "application/pdf"
    assert stored.stored.key.endswith(".pdf")


@pytest.mark.parametrize("category", ["PHOTO_PROOF", "OWNER_LIVENESS", "LOGO"])
def test_pdf_is_refused_for_image_only_categories(h: Harness, category: str) -> None:
    with pytest.raises(UnsupportedContent) as caught:
        upload(h.service(), h.client, samples.pdf(), category, None)

    assert caught.value.code == "type_not_allowed"
    assert category in caught.value.message
    assert h.db.files.get_by_key("x") is None
    assert h.spooled() == []


def test_a_file_over_the_requirement_cap_is_refused_after_a_late_category(h: Harness) -> None:
    # The file arrived before category: it was spooled under a larger cap and is
    # checked against the real one once the category is known.
    service = h.service()
    cap = service.target(fields("PHOTO_PROOF")).max_bytes
    spool = Spool.create(h.spool_dir, cap + 4096, "an upload of any category")
    spool.write(b"\xff\xd8\xff" + b"\x00" * cap)
    with pytest.raises(PayloadTooLarge) as caught:
        anyio.run(service.upload_file, h.client, fields("PHOTO_PROOF"), spool, None)

    assert caught.value.code == "file_too_large"
    assert "PHOTO_PROOF accepts at most 15 MB" in caught.value.message
    assert h.spooled() == []


def test_a_file_part_before_its_category_is_capped_by_the_largest_requirement(
    h: Harness,
) -> None:
    service = h.service()
    with service.open_spool({}) as spool:
        assert spool.max_bytes == h.catalogue.max_upload_bytes()
        spool.discard()
    with service.open_spool(fields("LOGO")) as spool:
        assert spool.max_bytes == h.catalogue.max_size_bytes(Category.LOGO)
        spool.discard()


@pytest.mark.parametrize(
    ("data", "category", "code"),
    [
        (b"", "DOCUMENT", "empty_file"),
        (b"<html>not a document</html>", "DOCUMENT", "unsupported_type"),
        (samples.pdf(), "PHOTO_PROOF", "type_not_allowed"),
        (samples.jpeg()[:200], "DOCUMENT", "image_truncated"),
    ],
)
def test_a_fetched_body_that_fails_content_rules_is_a_fetch_refusal(
    h: Harness, data: bytes, category: str, code: str
) -> None:
    with pytest.raises(FetchRefused) as caught:
        upload_url(h.service(fetcher=BodyFetcher(data)), h.client, category, "KTP")

    # 422 with the same code a direct upload of those bytes would get.
    assert caught.value.code == code
    with pytest.raises((InvalidRequest, UnsupportedContent)) as direct:
        upload(h.service(), h.client, data, category, "KTP")
    assert direct.value.code == code
    assert h.spooled() == []


@pytest.mark.parametrize("announce", [False, True])
def test_a_fetched_body_over_the_cap_names_the_requirement(h: Harness, announce: bool) -> None:
    cap = h.catalogue.max_size_bytes(Category.LOGO)
    fetcher = BodyFetcher(b"\x89PNG\r\n\x1a\n" + b"\x00" * cap, announce=announce)
    with pytest.raises(FetchRefused) as caught:
        upload_url(h.service(fetcher=fetcher), h.client, "LOGO")

    # The same words a sent file gets: the spool is the only counter of the cap.
    assert caught.value.code == "file_too_large"
    assert "LOGO accepts at most 15 MB" in caught.value.message
    # An announced length is refused before a byte is taken; otherwise at the cap.
    assert fetcher.delivered == (0 if announce else cap - cap % fetcher.chunk)
    assert h.spooled() == []


def test_a_fetched_document_is_stored_like_a_sent_one(h: Harness) -> None:
    data = samples.jpeg(64, 48)
    result = upload_url(h.service(fetcher=BodyFetcher(data, chunk=1000)), h.client, "LOGO")

    assert (result.stored.size, result.stored.sha256) == (len(data), samples.sha256(data))
    assert b"".join(h.blobs.open(result.stored.key)) == data
    assert h.spooled() == []


def test_file_urls_are_refused_when_fetching_is_disabled(h: Harness) -> None:
    with pytest.raises(InvalidRequest) as caught:
        upload_url(h.service(fetcher=None), h.client, "LOGO")
    assert caught.value.code == "url_upload_disabled"


def test_exactly_one_of_file_and_file_url(h: Harness) -> None:
    service = h.service(fetcher=BodyFetcher(samples.png()))
    form = {**fields("LOGO"), "file_url": "https://files.example/logo.png"}
    spool = service.open_spool(form)
    spool.write(samples.png())
    with pytest.raises(InvalidRequest, match="both were sent") as both:
        anyio.run(service.upload_file, h.client, form, spool, None)
    with pytest.raises(InvalidRequest, match="neither was sent") as neither:
        anyio.run(service.upload_url, h.client, fields("LOGO"), None)

    assert both.value.code == neither.value.code == "file_or_url_required"
    assert h.spooled() == []


def test_a_retry_with_the_same_key_gets_the_first_file_with_a_fresh_link(h: Harness) -> None:
    service = h.service()
    first = upload(service, h.client, samples.png(), "LOGO", None, key="retry-1")
    h.clock.advance(timedelta(minutes=90))  # the first link has expired by now

    again = upload(service, h.client, samples.png(), "LOGO", None, key="retry-1")

    assert (first.replayed, again.replayed) == (False, True)
    assert again.stored == first.stored
    assert again.link.expires_at > first.link.expires_at
    with pytest.raises(Conflict) as other:
        upload(service, h.client, samples.png(seed=9), "LOGO", None, key="retry-1")
    assert other.value.code == "idempotency_key_reused"
    assert h.spooled() == []


@pytest.mark.parametrize("local_blobs", [False, True])
@pytest.mark.parametrize("error", [RuntimeError("connection lost"), Unavailable("db down")])
def test_a_failed_row_insert_removes_the_blob(
    tmp_path: Path, local_blobs: bool, error: BaseException
) -> None:
    h = Harness(tmp_path, local_blobs=local_blobs)
    files = FailingFiles(error)
    service = h.service(files=files)

    with pytest.raises(type(error)):
        upload(service, h.client, samples.jpeg())

    assert files.reserved == set()  # the blob is gone, so is the intent to write it

    if local_blobs:
        assert h.stored_blobs() == []
        assert list((h.blob_root / ".tmp").iterdir()) == []
    else:
        assert isinstance(h.blobs, MemoryBlobStore)
        assert h.blobs.content_types == {}
    assert h.spooled() == []


@pytest.mark.parametrize("local_blobs", [False, True])
def test_an_id_taken_by_another_upload_is_minted_again(tmp_path: Path, local_blobs: bool) -> None:
    # The second upload is minted the first one's id (a clock step back), but its key
    # differs (another category), so only the row insert can notice the collision.
    h = Harness(tmp_path, local_blobs=local_blobs)
    service = h.service(minter=FixedMinter(1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_001))
    first_bytes, second_bytes = samples.jpeg(seed=1), samples.jpeg(seed=2)

    first = upload(service, h.client, first_bytes, "PHOTO_PROOF", None).stored
    second = upload(service, h.client, second_bytes, "LOGO", None).stored

    assert first.id == "DCM-0007-1700000000000"
    assert second.id == "DCM-0007-1700000000001"
    assert h.db.files.get(first.id) == first
    assert h.db.files.get(second.id) == second
    assert b"".join(h.blobs.open(first.key)) == first_bytes
    assert b"".join(h.blobs.open(second.key)) == second_bytes
    if local_blobs:
        assert sorted(h.stored_blobs()) == sorted(
            [h.blob_root / first.key, h.blob_root / second.key]
        )
    assert h.spooled() == []


@pytest.mark.parametrize("local_blobs", [False, True])
def test_a_key_taken_by_another_upload_is_minted_again(tmp_path: Path, local_blobs: bool) -> None:
    h = Harness(tmp_path, local_blobs=local_blobs)
    service = h.service(minter=FixedMinter(1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_005))

    first = upload(service, h.client, samples.png(seed=1), "LOGO", None).stored
    second = upload(service, h.client, samples.png(seed=2), "LOGO", None).stored

    assert second.id == "DCM-0007-1700000000005"
    assert first.key != second.key
    assert b"".join(h.blobs.open(second.key)) == samples.png(seed=2)
    assert b"".join(h.blobs.open(first.key)) == samples.png(seed=1)


def test_a_restart_removes_blobs_whose_row_never_committed(tmp_path: Path) -> None:
    h = Harness(tmp_path, local_blobs=True)
    service = h.service()
    kept = upload(service, h.client, samples.jpeg(seed=1))
    # A crash between the blob and its row: the intent and the bytes are there, no row.
    orphan_key = "berkas/sandbox/TEMP/" + h.client.client_id + "/LOGO/1-0007.png"
    h.db.files.reserve_key(orphan_key, 7, kept.stored.created_at)
    h.db.files.reserve_key("another/node/blob.png", 8, kept.stored.created_at)
    source = tmp_path / "orphan.png"
    source.write_bytes(samples.png())
    h.blobs.put_file(orphan_key, source, "image/png")

    assert service.recover_orphans() == 1

    assert [p.name for p in h.stored_blobs()] == [kept.stored.key.rsplit("/", 1)[1]]
    assert h.db.files.reserved_keys(7) == []
    assert h.db.files.reserved_keys(8) == ["another/node/blob.png"]  # not this node's
    assert service.recover_orphans() == 0


def test_an_operator_catalogue_narrowing_a_requirement_is_enforced(tmp_path: Path) -> None:
    # GET /file promises KTP as PDF only; POST /file must then refuse a KTP photo.
    packaged = json.loads((Path(catalogue_module.__file__).parent / "catalogue.json").read_text())
    packaged["requirements"]["DOCUMENT/KTP"]["extensions"] = ["PDF"]
    narrowed = tmp_path / "catalogue.json"
    narrowed.write_text(json.dumps(packaged))
    h = Harness(tmp_path)
    h.catalogue = Catalogue.load(narrowed)
    service = h.service()

    with pytest.raises(UnsupportedContent) as refused:
        upload(service, h.client, samples.jpeg())
    assert refused.value.code == "type_not_allowed"
    assert "PDF" in refused.value.message
    assert upload(service, h.client, samples.pdf()).stored.content_type == "application/pdf"
    # Other documents keep the category's types.
    assert upload(service, h.client, samples.jpeg(), code="NPWP_BADAN").stored.code == "NPWP_BADAN"


def test_a_fetched_body_is_written_off_the_event_loop(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: list[threading.Thread] = []
    original = Spool.write

    def recording(self: Spool, chunk: bytes) -> None:
        writers.append(threading.current_thread())
        original(self, chunk)

    monkeypatch.setattr(Spool, "write", recording)
    data = samples.big_jpeg(3 * 1024 * 1024)
    upload_url(h.service(fetcher=BodyFetcher(data)), h.client, "LOGO")

    # Batched: a few worker-thread writes for 3 MiB of 64 KiB chunks, none on the loop.
    assert 1 <= len(writers) <= 4
    assert threading.main_thread() not in writers


def test_a_stored_upload_is_answered_even_if_its_key_cannot_be_recorded(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = h.service()

    def database_gone(*args: object) -> None:
        raise Unavailable("db down", code=Code.DATABASE_UNAVAILABLE)

    monkeypatch.setattr(h.db.replays, "finish", database_gone)
    result = upload(service, h.client, samples.png(), "LOGO", None, key="lost-finish")

    # The file is committed, so the partner learns its id rather than a 503.
    assert h.db.files.get(result.stored.id) == result.stored


def _large_with_exif() -> bytes:
    image = Image.open(io.BytesIO(samples.big_jpeg(2 * 1024 * 1024)))
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize(
    ("make", "files_written"),
    [
        (samples.gps_jpeg, 1),  # in memory, stripped: the stored file only
        (lambda: samples.big_jpeg(2 * 1024 * 1024), 1),  # the spool file itself is stored
        (_large_with_exif, 2),  # a spool file, then the stripped one stored
    ],
    ids=["small stripped", "large as sent", "large stripped"],
)
def test_an_upload_writes_one_file_and_a_large_stripped_one_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[[], bytes], files_written: int
) -> None:
    # One pass strips (and, when on, seals) into the file the store keeps; a body past
    # the spool's memory also lands in a spool file first. Never the three of before
    # (spool, stripped copy, sealed copy).
    h = Harness(tmp_path, local_blobs=True)
    data = make()
    created: list[str] = []
    original = tempfile.mkstemp

    def counting(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = original(*args, **kwargs)
        created.append(name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", counting)

    stored = upload(h.service(), h.client, data, "PHOTO_PROOF", None).stored

    assert len(created) == files_written
    assert (b"".join(h.blobs.open(stored.key)) == data) == (
        files_written == 1 and len(data) > 600_000
    )
    assert h.spooled() == []
    assert list((h.blob_root / ".tmp").iterdir()) == []
