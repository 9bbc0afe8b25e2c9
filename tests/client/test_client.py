"""The partner SDK against the real app in-process: both clients, one set of scenarios.

Every scenario runs twice, through ``BerkasClient`` and through ``AsyncBerkasClient``
(driven from a blocking portal), against ``create_app(prepare(settings))`` over
``httpx.ASGITransport``. Network faults are injected in front of the app, in ASGI.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from PIL import Image

from berkas.api.app import create_app
from berkas.client import (
    AsyncBerkasClient,
    AuthenticationError,
    BerkasClient,
    Category,
    ChecksumMismatch,
    ConfigurationError,
    ConnectionFailed,
    DocumentCode,
    DryRunResult,
    FetchError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReplayedError,
    RetryPolicy,
    ServerError,
    UnsupportedContentError,
    profiles,
)
from berkas.client.errors import ConflictError, api_error
from berkas.config import Settings, load_settings
from berkas.core.models import Client
from berkas.services.bundle import Services
from berkas.wiring import prepare
from tests.support import samples
from tests.support.fakes import FakeClock
from tests.support.fixture_server import FixtureServer, send

TOKEN_PATH = "/adv-core-api/partner/v1.0/token"
FILE_PATH = "/adv-core-api/partner/v1.0/file"
BASE_URL = "http://berkas.test"

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]

# Answers the network fakes with 200 (see ``Faults``).
CANNED: dict[str, dict[str, Any]] = {
    "stored": {"id": "DCM-0001-1732700000000", "link": "http://x/l", "category": "LOGO"},
    "malformed": {
        "dry_run": True,
        "category": "LOGO",
        "content_type": "image/png",
        "size": "1.2 KB",
        "sha256": "ab" * 32,
    },
}
# A phone photo with GPS in its EXIF, served to the app's fetcher for the URL dry run.
PHOTO = samples.gps_jpeg(seed=41)


class Faults:
    """ASGI middleware in front of the real app: a scripted, misbehaving network.

    Each request takes the next entry of ``plan``: ``"refuse"`` (nothing reaches the
    app: a connection error), ``"lose"`` (the app does the work, the answer is lost on
    the way back), ``"503"``, ``"html502"`` (a proxy's HTML page), ``"429"`` (a limit,
    ``Retry-After: 0``), ``"429-long"`` (``Retry-After: 60``), ``"stored"`` (200 with an
    upload's answer, as from a server that ignores ``Berkas-Dry-Run``), ``"malformed"``
    (200 with a dry run's answer whose ``size`` is a string); none left: pass.
    ``seen`` records (method, path, headers) of every request that arrived.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.plan: list[str] = []
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.on_fault: Callable[[], None] = lambda: None

    def reset(self, app: ASGIApp) -> None:
        self.app, self.plan, self.seen = app, [], []
        self.on_fault = lambda: None

    def requests_to(self, path: str) -> list[dict[str, str]]:
        return [headers for _, seen_path, headers in self.seen if seen_path == path]

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.seen.append((scope["method"], scope["path"], headers))
        fault = self.plan.pop(0) if self.plan else "pass"
        if fault != "pass":
            self.on_fault()
        if fault == "refuse":
            raise httpx.ConnectError("connection refused (injected)")
        if fault == "lose":

            async def discard(message: dict[str, Any]) -> None:
                return None

            await self.app(scope, receive, discard)
            raise httpx.ReadError("connection reset by peer (injected)")
        if fault in ("503", "html502"):
            status, kind, body = (
                (503, b"application/json", _envelope("service_unavailable", "down"))
                if fault == "503"
                else (502, b"text/html", b"<html><body>Bad Gateway</body></html>")
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", kind)],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if fault in CANNED:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(CANNED[fault]).encode()})
            return
        if fault in ("429", "429-long"):
            wait = b"0" if fault == "429" else b"60"
            await send(
                {
                    "type": "http.response.start",
                    "status": 429,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", wait)],
                }
            )
            body = _envelope("rate_limited", "slow down")
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _envelope(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "type": "api_error"}}).encode()


class PortalTransport(httpx.BaseTransport):
    """A blocking transport into an ASGI app: ``httpx.ASGITransport`` run in a portal."""

    def __init__(self, app: ASGIApp, portal: BlockingPortal) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content)

        return self._portal.call(send)


class Blocking:
    """``AsyncBerkasClient``'s methods called from sync test code, awaited in the portal."""

    def __init__(self, client: AsyncBerkasClient, portal: BlockingPortal) -> None:
        self._client = client
        self._portal = portal

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._portal.call(functools.partial(method, *args, **kwargs))


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


@pytest.fixture(scope="module")
def origin() -> Iterator[FixtureServer]:
    with FixtureServer("127.0.0.1") as fixture:
        fixture.route("/photo.jpg", send(200, PHOTO, content_type="image/jpeg"))
        yield fixture


@pytest.fixture(scope="module")
def sdk_settings(tmp_path_factory: pytest.TempPathFactory, origin: FixtureServer) -> Settings:
    return load_settings(
        data_dir=tmp_path_factory.mktemp("sdk") / "data",
        # The origin fixture is on loopback: trust exactly that network and port.
        fetch_allow_networks="127.0.0.0/8",
        fetch_allow_ports=str(origin.port),
    )


@pytest.fixture(scope="module")
def services(sdk_settings: Settings) -> Iterator[Services]:
    built = prepare(sdk_settings, serving=False)
    yield built
    built.close()


@pytest.fixture(scope="module")
def app(services: Services) -> ASGIApp:
    return create_app(services)


@pytest.fixture(scope="module")
def network(app: ASGIApp) -> Faults:
    return Faults(app)


@pytest.fixture
def faults(network: Faults, app: ASGIApp) -> Faults:
    network.reset(app)
    return network


@pytest.fixture(scope="module")
def partner(services: Services) -> Client:
    return services.clients.create()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


Factory = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def make_client(
    request: pytest.FixtureRequest, faults: Faults, portal: BlockingPortal, partner: Client
) -> Iterator[Factory]:
    """Build a client of the parametrised kind; every call blocks until answered."""
    made: list[Callable[[], None]] = []

    def make(**options: Any) -> Any:
        options.setdefault("client_id", partner.client_id)
        options.setdefault("secret_key", partner.secret_key)
        # Short waits: the scenarios inject failures on purpose.
        options.setdefault("retry", RetryPolicy(backoff=0.01, max_backoff=0.05))
        if request.param == "sync":
            sync = BerkasClient(BASE_URL, transport=PortalTransport(faults, portal), **options)
            made.append(sync.close)
            return sync
        aio = AsyncBerkasClient(BASE_URL, transport=httpx.ASGITransport(app=faults), **options)
        made.append(lambda: portal.call(aio.aclose))
        return Blocking(aio, portal)

    yield make
    for close in made:
        close()


@pytest.fixture
def client(make_client: Factory, clock: FakeClock) -> Any:
    return make_client(clock=clock)


def noisy_jpeg(side: int = 700) -> bytes:
    """A JPEG of several hundred kilobytes: noise does not compress."""
    buffer = io.BytesIO()
    Image.effect_noise((side, side), 90).convert("RGB").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


class ChunkLog(io.BytesIO):
    """A file object that remembers how much each ``read`` asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


# -- tokens -------------------------------------------------------------------------


def test_token_is_cached_until_shortly_before_it_expires(
    client: Any, clock: FakeClock, faults: Faults
) -> None:
    first = client.token(5)
    assert first.lifetime.total_seconds() == 5 * 60
    assert first.authorization == f"Bearer {first.token}"
    assert client.token(5) is first

    # A minute's margin before expiry is not reached yet.
    clock.advance(timedelta(seconds=4 * 60 - 10))
    assert client.token(5) is first
    clock.advance(timedelta(seconds=20))
    renewed = client.token(5)
    assert renewed is not first
    assert len(faults.requests_to(TOKEN_PATH)) == 2


def test_a_different_valid_time_asks_for_a_new_token(client: Any, faults: Faults) -> None:
    short = client.token(5)
    long = client.token(60)
    assert long.lifetime.total_seconds() == 60 * 60
    assert long is not short
    assert len(faults.requests_to(TOKEN_PATH)) == 2


def test_token_requests_carry_dokus_signed_headers(client: Any, faults: Faults) -> None:
    client.token(360)
    (headers,) = faults.requests_to(TOKEN_PATH)
    assert headers["client-id"]
    assert headers["signature"].startswith("HMACSHA256=")
    assert headers["request-timestamp"].endswith("Z")
    assert headers["content-type"] == "application/json"


def test_uploads_reuse_the_cached_token(client: Any, faults: Faults) -> None:
    client.upload(Category.LOGO, samples.png())
    client.upload(Category.LOGO, samples.png(seed=1))
    assert len(faults.requests_to(TOKEN_PATH)) == 1


def test_a_cached_token_the_server_refuses_is_renewed_once(
    client: Any, faults: Faults, partner: Client, tmp_path: Path
) -> None:
    client.token()
    # Another server that knows the partner but holds different signing keys: it refuses
    # the cached token (token_key_unknown), as after a restore from an older backup.
    other = prepare(load_settings(data_dir=tmp_path / "other"), serving=False)
    try:
        other.database.clients.add(partner)
        faults.app = create_app(other)
        uploaded = client.upload("LOGO", samples.png())
    finally:
        other.close()
    assert uploaded.category == "LOGO"
    assert len(faults.requests_to(TOKEN_PATH)) == 2
    assert len(faults.requests_to(FILE_PATH)) == 2


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_three_concurrent_async_uploads_on_a_fresh_client_fetch_one_token(
    faults: Faults, partner: Client, anyio_backend: str
) -> None:
    uploaded: list[str] = []
    async with AsyncBerkasClient(
        BASE_URL, partner.client_id, partner.secret_key, transport=httpx.ASGITransport(app=faults)
    ) as client:

        async def upload(seed: int) -> None:
            uploaded.append((await client.upload("LOGO", samples.png(seed=seed))).id)

        async with anyio.create_task_group() as group:
            for seed in range(3):
                group.start_soon(upload, seed)
    assert len(set(uploaded)) == 3
    assert len(faults.requests_to(TOKEN_PATH)) == 1
    assert len(faults.requests_to(FILE_PATH)) == 3


def test_three_threads_on_a_fresh_blocking_client_fetch_one_token(
    faults: Faults, portal: BlockingPortal, partner: Client
) -> None:
    start = threading.Barrier(3)
    uploaded: list[str] = []
    with BerkasClient(
        BASE_URL,
        partner.client_id,
        partner.secret_key,
        transport=PortalTransport(faults, portal),
    ) as client:

        def upload(seed: int) -> None:
            start.wait()
            uploaded.append(client.upload("LOGO", samples.png(seed=seed)).id)

        threads = [threading.Thread(target=upload, args=(seed,)) for seed in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(set(uploaded)) == 3
    assert len(faults.requests_to(TOKEN_PATH)) == 1


def test_a_failed_token_fetch_lets_the_waiting_calls_try_their_own(
    make_client: Factory, faults: Faults, portal: BlockingPortal, partner: Client
) -> None:
    client = make_client(secret_key="not-the-secret")
    failures: list[AuthenticationError] = []

    def upload() -> None:
        try:
            client.upload("LOGO", samples.png())
        except AuthenticationError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # None left waiting on a lock the failed fetch kept: each call asked and was refused.
    assert [e.code for e in failures] == ["signature_invalid"] * 3
    assert len(faults.requests_to(TOKEN_PATH)) == 3


# -- requirements -------------------------------------------------------------------


def test_requirements_are_dokus_published_example(client: Any) -> None:
    found = client.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    contact = found["business"]["contact"]
    assert [d["code"] for d in contact["documents"]] == ["KTP"]
    assert contact["documents"][0]["form"][0]["code"] == "NO_KTP"
    assert found["business"]["brand"]["photo_proof"]["extensions"] == ["PNG", "JPG", "JPEG"]


def test_unknown_requirement_value_names_the_parameter(client: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.requirements("PERSONAL", "PT", "RETAIL", "ID")
    assert caught.value.status == 400
    assert "businessLegalEntity" in caught.value.message


# -- uploads and downloads ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "sample"),
    [
        ("bytes", (samples.jpeg(320, 200), Category.PHOTO_PROOF, None, "image/jpeg")),
        ("path", (samples.png(100, 80), "LOGO", None, "image/png")),
        ("file", (samples.pdf(2), Category.DOCUMENT, DocumentCode.KTP, "application/pdf")),
        ("path", (samples.pdf(), "DOCUMENT", "NPWP_BADAN", "application/pdf")),
    ],
)
def test_upload_then_download_returns_the_same_bytes(
    client: Any, tmp_path: Path, kind: str, sample: tuple[bytes, str, str | None, str]
) -> None:
    content, category, code, mime = sample
    source: Any = content
    if kind == "path":
        source = tmp_path / "document.bin"
        source.write_bytes(content)
    elif kind == "file":
        source = io.BytesIO(content)

    uploaded = client.upload(category, source, code=code)

    assert uploaded.category == str(category)
    assert uploaded.code == (None if code is None else str(code))
    assert uploaded.content_type == mime
    assert uploaded.size == len(content)
    assert uploaded.sha256 == samples.sha256(content)
    assert uploaded.link_expires_at is not None
    assert client.download(uploaded.link) == content
    written = client.download_to(uploaded.link, tmp_path / "copy")
    assert written == len(content)
    assert hashlib.sha256((tmp_path / "copy").read_bytes()).hexdigest() == uploaded.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"copy", "document.bin"} if kind == "path" else {"copy"}
    )

    info = client.file(uploaded.id)
    assert (info.id, info.category, info.code) == (uploaded.id, uploaded.category, uploaded.code)
    assert (info.size, info.sha256, info.content_type) == (len(content), uploaded.sha256, mime)
    assert client.download(info.link) == content


def test_upload_streams_a_file_object_in_chunks(client: Any) -> None:
    content = noisy_jpeg()
    assert len(content) > 256 * 1024
    source = ChunkLog(content)

    uploaded = client.upload("PHOTO_PROOF", source, filename="shop.jpg")

    assert uploaded.sha256 == samples.sha256(content)
    reads = [size for size in source.asked if size != 0]
    assert len(reads) > 4
    assert all(0 < size <= 64 * 1024 for size in reads), source.asked


def test_owner_liveness_gets_a_cnt_id(client: Any) -> None:
    assert client.upload(Category.OWNER_LIVENESS, samples.jpeg()).id.startswith("CNT-")


# -- dry runs (Berkas-Dry-Run: true) ---------------------------------------------------


@pytest.fixture
def fresh(make_client: Factory, services: Services) -> Any:
    """A client of a partner with no files yet: ``duplicate_of`` depends on nothing else."""
    stranger = services.clients.create()
    return make_client(client_id=stranger.client_id, secret_key=stranger.secret_key)


def test_check_answers_what_upload_would_store_and_stores_nothing(
    fresh: Any, faults: Faults
) -> None:
    checked = fresh.check(Category.PHOTO_PROOF, PHOTO, filename="shop.jpg")

    assert isinstance(checked, DryRunResult)
    assert (checked.category, checked.code) == ("PHOTO_PROOF", None)
    assert (checked.content_type, checked.width, checked.height) == ("image/jpeg", 96, 64)
    assert checked.metadata_removed == ("COMMENT", "EXIF", "GPS")
    assert checked.duplicate_of is None
    (sent,) = faults.requests_to(FILE_PATH)
    assert sent["berkas-dry-run"] == "true"
    assert "request-id" not in sent
    assert sent["authorization"].startswith("Bearer ")

    # Stored for real: exactly what the check said, and no duplicate of anything, so the
    # check kept nothing. A second check now names the stored file.
    uploaded = fresh.upload("PHOTO_PROOF", PHOTO)
    assert "berkas-dry-run" not in faults.requests_to(FILE_PATH)[-1]
    assert (uploaded.size, uploaded.sha256) == (checked.size, checked.sha256)
    assert uploaded.metadata_removed == checked.metadata_removed
    assert uploaded.duplicate_of is None
    assert fresh.check("PHOTO_PROOF", PHOTO).duplicate_of == uploaded.id
    assert fresh.upload("PHOTO_PROOF", PHOTO).duplicate_of == uploaded.id


def test_check_takes_what_upload_takes(client: Any, tmp_path: Path) -> None:
    source = tmp_path / "ktp.pdf"
    source.write_bytes(samples.pdf())
    seen, on_progress = _recorder()

    checked = client.check("DOCUMENT", source, code=DocumentCode.KTP, on_progress=on_progress)

    assert (checked.category, checked.code, checked.content_type) == (
        "DOCUMENT",
        "KTP",
        "application/pdf",
    )
    assert (checked.size, checked.sha256) == (len(samples.pdf()), samples.sha256(samples.pdf()))
    assert (checked.width, checked.height, checked.metadata_removed) == (None, None, ())
    assert seen[-1] == (len(samples.pdf()), len(samples.pdf()))


def test_check_url_has_the_server_fetch_and_check(
    fresh: Any, faults: Faults, origin: FixtureServer
) -> None:
    url = f"http://127.0.0.1:{origin.port}/photo.jpg"

    checked = fresh.check_url(Category.LOGO, url)

    assert (checked.category, checked.content_type) == ("LOGO", "image/jpeg")
    assert checked.metadata_removed == ("COMMENT", "EXIF", "GPS")
    (sent,) = faults.requests_to(FILE_PATH)
    assert sent["berkas-dry-run"] == "true"
    assert fresh.upload_url("LOGO", url).sha256 == checked.sha256
    assert fresh.check_url("LOGO", url).duplicate_of is not None


def test_a_check_is_refused_as_the_upload_would_be(client: Any, origin: FixtureServer) -> None:
    with pytest.raises(UnsupportedContentError) as refused:
        client.check("LOGO", b"just some text, not a picture\n" * 10)
    assert refused.value.status == 415
    with pytest.raises(InvalidRequestError) as missing:
        client.check(Category.DOCUMENT, samples.pdf())
    assert missing.value.code == "code_missing"
    with pytest.raises(FetchError):
        client.check_url("LOGO", f"http://127.0.0.1:{origin.port}/missing")


def test_a_check_is_retried_since_it_stores_nothing(client: Any, faults: Faults) -> None:
    client.token()
    faults.plan = ["lose"]  # an upload without request_id would not be sent again
    assert client.check("LOGO", samples.png()).category == "LOGO"
    assert len(faults.requests_to(FILE_PATH)) == 2


@pytest.mark.parametrize(
    ("fault", "says"),
    [("malformed", "no valid 'size'"), ("stored", "stored the file as DCM-0001-1732700000000")],
)
def test_an_answer_that_is_not_a_dry_run_is_an_invalid_response(
    client: Any, faults: Faults, fault: str, says: str
) -> None:
    client.token()
    faults.plan = [fault]
    with pytest.raises(ServerError) as caught:
        client.check("LOGO", samples.png())
    assert (caught.value.status, caught.value.code) == (200, "invalid_response")
    assert says in caught.value.message


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_check_in_an_event_loop(
    app: ASGIApp, services: Services, origin: FixtureServer, anyio_backend: str
) -> None:
    stranger = services.clients.create()
    async with AsyncBerkasClient(
        BASE_URL, stranger.client_id, stranger.secret_key, transport=httpx.ASGITransport(app=app)
    ) as client:
        checked = await client.check("PHOTO_PROOF", PHOTO)
        fetched = await client.check_url("PHOTO_PROOF", f"http://127.0.0.1:{origin.port}/photo.jpg")
        assert fetched == checked
        assert (await client.upload("PHOTO_PROOF", PHOTO)).sha256 == checked.sha256


# -- errors -------------------------------------------------------------------------


def test_a_wrong_secret_is_an_authentication_error(make_client: Factory) -> None:
    client = make_client(secret_key="SK-not-the-secret")
    with pytest.raises(AuthenticationError) as caught:
        client.token()
    error = caught.value
    assert (error.status, error.code, error.type) == (
        401,
        "signature_invalid",
        "authentication_error",
    )
    assert "Signature" in error.message


def test_an_unknown_category_is_refused_by_code(client: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.upload("PASSPORT_SCAN", samples.jpeg())
    assert caught.value.code == "category_invalid"
    assert "OWNER_LIVENESS" in caught.value.message


def test_a_document_without_code_is_refused(client: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        client.upload(Category.DOCUMENT, samples.pdf())
    assert caught.value.code == "code_missing"


def test_text_is_not_an_image(client: Any) -> None:
    with pytest.raises(UnsupportedContentError) as caught:
        client.upload("LOGO", b"just some text, not a picture\n" * 10)
    assert caught.value.status == 415


def test_another_partners_file_is_not_found(
    client: Any, make_client: Factory, services: Services
) -> None:
    stranger = services.clients.create()
    theirs = make_client(client_id=stranger.client_id, secret_key=stranger.secret_key)
    uploaded = theirs.upload("LOGO", samples.png())

    with pytest.raises(NotFoundError) as caught:
        client.file(uploaded.id)
    assert caught.value.code == "file_not_found"


def test_an_id_cannot_reach_another_route(client: Any) -> None:
    with pytest.raises(NotFoundError):
        client.file("../token")


def test_an_altered_link_is_refused(client: Any) -> None:
    uploaded = client.upload("LOGO", samples.png())
    with pytest.raises(PermissionDeniedError):
        client.download(uploaded.link.replace("signature=", "signature=x"))


def test_a_body_that_is_not_the_envelope_still_becomes_an_error(
    client: Any, faults: Faults
) -> None:
    faults.plan = ["html502"] * 3
    with pytest.raises(ServerError) as caught:
        client.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    assert (caught.value.status, caught.value.code) == (502, "http_502")
    assert "Bad Gateway" in caught.value.message


def test_a_409_replay_carries_the_first_answer() -> None:
    replay = api_error(409, b'{"token": "eyJ..."}', request_id="r-1")
    assert isinstance(replay, ReplayedError)
    assert replay.data == {"token": "eyJ..."}
    assert (replay.code, replay.request_id) == ("request_replayed", "r-1")

    clash = api_error(
        409,
        b'{"error": {"code": "request_id_reused", "message": "m", "type": "conflict_error"}}',
    )
    assert type(clash) is ConflictError
    assert clash.code == "request_id_reused"


# -- retries ------------------------------------------------------------------------


def test_a_lost_token_answer_is_recovered_by_replay(client: Any, faults: Faults) -> None:
    faults.plan = ["lose"]
    token = client.token()

    first, second = faults.requests_to(TOKEN_PATH)
    # The retry is the same request, byte for byte: the server answers it from its
    # replay record (HTTP 409, first body) instead of issuing a second token.
    for header in ("request-id", "request-timestamp", "signature"):
        assert first[header] == second[header]
    assert client.upload("LOGO", samples.png()).category == "LOGO"
    assert token.expires_at is not None


def test_a_retry_after_the_reuse_window_is_signed_again_under_the_same_id(
    client: Any, faults: Faults, clock: FakeClock
) -> None:
    faults.plan = ["lose"]

    def later() -> None:
        clock.advance(timedelta(seconds=61))

    faults.on_fault = later
    client.token()

    first, second = faults.requests_to(TOKEN_PATH)
    assert first["request-id"] == second["request-id"]
    assert first["request-timestamp"] != second["request-timestamp"]
    assert first["signature"] != second["signature"]


def test_requirements_survive_a_refused_connection_and_a_503(client: Any, faults: Faults) -> None:
    faults.plan = ["refuse", "503"]
    found = client.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    assert "business" in found
    tries = faults.requests_to(FILE_PATH)
    assert len(tries) == 3
    assert len({h["request-id"] for h in tries}) == 1


def test_a_429_is_retried_after_its_retry_after_under_the_same_request_id(
    client: Any, faults: Faults
) -> None:
    faults.plan = ["429"]
    assert "business" in client.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    tries = faults.requests_to(FILE_PATH)
    assert len(tries) == 2
    assert len({h["request-id"] for h in tries}) == 1


def test_a_retry_after_longer_than_the_backoff_cap_raises_at_once(
    client: Any, faults: Faults
) -> None:
    faults.plan = ["429-long"]
    with pytest.raises(RateLimitError) as caught:
        client.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")
    assert caught.value.code == "rate_limited"
    assert len(faults.requests_to(FILE_PATH)) == 1


def test_retries_are_bounded(client: Any, faults: Faults) -> None:
    client.token()
    faults.plan = ["503"] * 5
    with pytest.raises(ServerError) as caught:
        client.file("DCM-0001-0000000000000")
    assert caught.value.status == 503
    assert len(faults.requests_to("/adv-core-api/partner/v1.0/file/DCM-0001-0000000000000")) == 3


def test_an_upload_is_retried_when_nothing_was_sent(client: Any, faults: Faults) -> None:
    client.token()
    faults.plan = ["refuse"]
    assert client.upload("LOGO", samples.png()).category == "LOGO"
    assert len(faults.requests_to(FILE_PATH)) == 2


def test_an_upload_whose_answer_was_lost_is_not_sent_twice(client: Any, faults: Faults) -> None:
    client.token()
    faults.plan = ["lose"]
    with pytest.raises(ConnectionFailed) as caught:
        client.upload("LOGO", samples.png())
    assert "ReadError" in str(caught.value)
    assert len(faults.requests_to(FILE_PATH)) == 1


def test_an_upload_with_a_request_id_is_retried_with_it(client: Any, faults: Faults) -> None:
    client.token()
    faults.plan = ["503"]
    uploaded = client.upload("LOGO", samples.png(), request_id="upload-0001")
    assert uploaded.category == "LOGO"
    assert [h["request-id"] for h in faults.requests_to(FILE_PATH)] == ["upload-0001"] * 2


def test_connection_failures_are_reported_after_the_retries(client: Any, faults: Faults) -> None:
    faults.plan = ["refuse"] * 3
    with pytest.raises(ConnectionFailed) as caught:
        client.token()
    assert "ConnectError" in str(caught.value)
    assert len(faults.requests_to(TOKEN_PATH)) == 3


# -- the async client in its own event loop -------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_async_client_in_an_event_loop(
    app: ASGIApp, partner: Client, tmp_path: Path, anyio_backend: str
) -> None:
    content = samples.jpeg(seed=7)
    async with AsyncBerkasClient(
        BASE_URL, partner.client_id, partner.secret_key, transport=httpx.ASGITransport(app=app)
    ) as client:
        uploaded = await client.upload("PHOTO_PROOF", content)
        info = await client.file(uploaded.id)
        assert info.sha256 == uploaded.sha256
        assert await client.download_to(info.link, tmp_path / "out.jpg") == len(content)
    assert (tmp_path / "out.jpg").read_bytes() == content


# -- tokens in logs, typed requirements, progress, checksums, from_env ----------------


def test_a_tokens_repr_and_str_never_show_the_token(client: Any) -> None:
    token = client.token()
    for shown in (repr(token), str(token), f"{[token]}", f"{token!r}"):
        assert token.token not in shown
    # Enough of the tail to tell two tokens apart in a log, no more.
    assert repr(token).startswith(f"Token(token='…{token.token[-6:]}', issued_at=")
    assert token.authorization == f"Bearer {token.token}"


def test_requirements_are_typed_and_still_the_wire_dict(client: Any) -> None:
    found = client.requirements("PERSONAL", "PERSEORANGAN", "RETAIL", "ID")

    assert found["business"]["contact"]["documents"][0]["code"] == "KTP"
    assert json.loads(json.dumps(found)) == found
    assert [(e.section, e.category, e.code) for e in found.entries] == [
        ("business.brand", "PHOTO_PROOF", None),
        ("business.contact", "DOCUMENT", "KTP"),
        ("business.contact", "OWNER_LIVENESS", None),
    ]
    ktp = found.find(Category.DOCUMENT, DocumentCode.KTP)
    assert ktp is not None
    assert ktp.extensions == ("PDF", "JPG", "JPEG", "PNG")
    assert (ktp.max_size, ktp.max_bytes) == (15, 15 * 1024 * 1024)
    (nik,) = ktp.form
    assert (nik.code, nik.min_size, nik.max_size, nik.numeric) == ("NO_KTP", 16, 16, True)
    assert found.find("photo_proof") == found.entries[0]
    assert found.find("LOGO") is None


def _recorder() -> tuple[list[tuple[int, int | None]], Callable[[int, int | None], None]]:
    seen: list[tuple[int, int | None]] = []
    return seen, lambda done, total: seen.append((done, total))


@pytest.mark.parametrize("kind", ["path", "bytes", "file"])
def test_upload_progress_counts_up_to_the_size(client: Any, tmp_path: Path, kind: str) -> None:
    content = noisy_jpeg()
    source: Any = content
    if kind == "path":
        source = tmp_path / "shop.jpg"
        source.write_bytes(content)
    elif kind == "file":
        source = io.BytesIO(content)
    seen, on_progress = _recorder()

    uploaded = client.upload("PHOTO_PROOF", source, on_progress=on_progress)

    assert uploaded.size == len(content)
    assert len(seen) > 4  # reported chunk by chunk, not once at the end
    assert {total for _, total in seen} == {len(content)}
    done = [d for d, _ in seen]
    assert done == sorted(done)
    assert done[-1] == len(content)


def test_upload_progress_from_a_pipe_has_no_total(client: Any) -> None:
    content = noisy_jpeg(400)
    reader, writer = os.pipe()
    with os.fdopen(writer, "wb") as sink:
        # The pipe buffer is smaller than the image: write from a thread.
        def feed() -> None:
            sink.write(content)
            sink.close()

        feeder = threading.Thread(target=feed)
        feeder.start()
        seen, on_progress = _recorder()
        with os.fdopen(reader, "rb") as pipe:
            uploaded = client.upload("LOGO", pipe, on_progress=on_progress)
        feeder.join()
    assert uploaded.sha256 == samples.sha256(content)
    assert {total for _, total in seen} == {None}
    assert seen[-1][0] == len(content)


def test_download_progress_and_sha256_check(client: Any, tmp_path: Path) -> None:
    content = noisy_jpeg()
    uploaded = client.upload("PHOTO_PROOF", content)
    seen, on_progress = _recorder()

    got = client.download(uploaded.link, sha256=uploaded.sha256, on_progress=on_progress)

    assert got == content
    assert seen[0] == (0, len(content))
    assert seen[-1] == (len(content), len(content))
    stream = io.BytesIO()
    assert client.download_to(uploaded.link, stream, sha256=uploaded.sha256) == len(content)
    assert stream.getvalue() == content


def test_a_download_that_does_not_match_its_sha256_keeps_nothing(
    client: Any, tmp_path: Path
) -> None:
    uploaded = client.upload("LOGO", samples.png())
    with pytest.raises(ChecksumMismatch) as caught:
        client.download_to(uploaded.link, tmp_path / "logo.png", sha256="ab" * 32)
    assert caught.value.actual == uploaded.sha256
    assert caught.value.expected == "ab" * 32
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ChecksumMismatch):
        client.download(uploaded.link, sha256="AB" * 32)


def test_download_to_without_overwrite_keeps_an_existing_file(client: Any, tmp_path: Path) -> None:
    uploaded = client.upload("LOGO", samples.png())
    mine = tmp_path / "logo.png"
    mine.write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        client.download_to(uploaded.link, mine, overwrite=False)
    assert mine.read_bytes() == b"mine"
    assert list(tmp_path.iterdir()) == [mine]
    client.download_to(uploaded.link, mine)
    assert mine.read_bytes() == samples.png()


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "xdg"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_from_env_reads_the_clis_variables(
    kind: str, partner: Client, faults: Faults, portal: BlockingPortal, config_home: Path
) -> None:
    env = {
        "BERKAS_CLIENT_BASE_URL": BASE_URL,
        "BERKAS_CLIENT_ID": partner.client_id,
        "BERKAS_CLIENT_SECRET": partner.secret_key,
        "XDG_CONFIG_HOME": str(config_home),
    }
    if kind == "sync":
        with BerkasClient.from_env(env=env, transport=PortalTransport(faults, portal)) as sync:
            assert sync.token().token
    else:
        aio = AsyncBerkasClient.from_env(env=env, transport=httpx.ASGITransport(app=faults))
        assert portal.call(aio.token).token
        portal.call(aio.aclose)
    assert faults.requests_to(TOKEN_PATH)[0]["client-id"] == partner.client_id


def test_from_env_falls_back_to_a_profile_and_the_environment_wins(
    partner: Client, faults: Faults, portal: BlockingPortal, config_home: Path
) -> None:
    profiles.save_profile(
        config_home / "berkas" / "config.toml",
        "work",
        {"base_url": BASE_URL, "client_id": partner.client_id, "secret_key": partner.secret_key},
    )
    env = {"XDG_CONFIG_HOME": str(config_home)}
    transport = PortalTransport(faults, portal)
    with BerkasClient.from_env(profile="work", env=env, transport=transport) as client:
        assert client.token().token
    wrong = {**env, "BERKAS_CLIENT_SECRET": "SK-wrong"}
    with (
        BerkasClient.from_env(profile="work", env=wrong, transport=transport) as client,
        pytest.raises(AuthenticationError),
    ):
        client.token()


def test_from_env_names_what_is_missing(config_home: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(config_home)}
    with pytest.raises(ConfigurationError, match="BERKAS_CLIENT_ID is not set"):
        BerkasClient.from_env(env=env)
    with pytest.raises(ConfigurationError, match="BERKAS_CLIENT_SECRET is not set"):
        BerkasClient.from_env(env={**env, "BERKAS_CLIENT_ID": "BRN-1"})
    with pytest.raises(ConfigurationError, match="no profile 'nope'"):
        BerkasClient.from_env(env=env, profile="nope")
