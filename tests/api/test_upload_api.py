"""POST /file through the real app in-process: multipart edge cases, caps, clean failure.

Every refusal must leave nothing behind: no spooled part file, no stored blob, no row.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from berkas.api import multipart as multipart_module
from berkas.services import uploads as uploads_module
from berkas.services.spool import Spool
from tests.support import samples
from tests.support.errors import assert_error
from tests.support.fakes import StreamedBody, multipart, multipart_type
from tests.support.inprocess import InProcess
from tests.support.partner import FILE_PATH, PREFIX, Partner, Parts

MIB = 1024 * 1024
MULTIPART = multipart_type()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    srv = InProcess(tmp_path_factory.mktemp("api") / "data")
    yield srv
    srv.close()


@pytest.fixture
def partner(server: InProcess) -> Iterator[Partner]:
    spooled, stored = server.spooled(), server.blobs()
    yield server.partner()
    # Whatever the test did, no request may leave a partial upload behind (compared with
    # before the test, so one leak fails only the test that caused it).
    assert set(server.spooled()) <= set(spooled)
    assert all(path.exists() for path in stored)


def refused(
    server: InProcess,
    partner: Partner,
    body: bytes,
    status: int,
    code: str,
    *,
    content_type: str | None = MULTIPART,
) -> dict[str, Any]:
    spooled, stored = server.spooled(), server.blobs()
    response = partner.post_file(body, content_type)
    error = assert_error(response, status, code)
    assert server.blobs() == stored
    assert set(server.spooled()) <= set(spooled)
    return error


def test_a_well_formed_upload_is_stored(server: InProcess, partner: Partner) -> None:
    data = samples.jpeg()
    body = multipart(("category", "DOCUMENT"), ("code", "KTP"), ("file", data, "ktp.jpg"))

    response = partner.post_file(body, multipart_type())

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["category"] == "DOCUMENT"
    assert result["code"] == "KTP"
    assert result["sha256"] == samples.sha256(data)
    link = httpx.URL(result["link"])
    download = server.http.get(link.raw_path.decode())
    assert download.status_code == 200
    assert download.content == data


def test_an_iphone_heic_photo_is_refused_naming_heic_and_how_to_send_jpeg(
    server: InProcess, partner: Partner
) -> None:
    # An iPhone camera's default file: the ISO BMFF "ftyp" box, major brand "heic".
    ftyp = b"heic\x00\x00\x00\x00mif1heicmiaf"
    heic = (8 + len(ftyp)).to_bytes(4, "big") + b"ftyp" + ftyp
    body = multipart(
        ("category", "OWNER_LIVENESS"), ("file", heic + b"\x00" * 4000, "IMG_0001.HEIC")
    )

    error = refused(server, partner, body, 415, "unsupported_type")

    assert error["message"].startswith(
        "file is a HEIC image (an iPhone photo), which OWNER_LIVENESS does not accept: send "
        "JPEG or PNG; on an iPhone set Settings > Camera > Formats > Most Compatible"
    ), error["message"]


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (None, multipart(("category", "LOGO"), ("file", samples.png(), "a.png"))),
        ("application/x-www-form-urlencoded", b"category=LOGO&file_url=http%3A%2F%2Fx"),
        ("application/json", b'{"category": "LOGO"}'),
    ],
)
def test_a_body_that_is_not_multipart_is_refused(
    server: InProcess, partner: Partner, content_type: str | None, body: bytes
) -> None:
    error = refused(server, partner, body, 400, "multipart_required", content_type=content_type)

    assert "multipart/form-data" in error["message"]
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("name", ["Idempotency-Key", "Request-Id"])
@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_retry_key_is_refused_not_ignored(
    server: InProcess, partner: Partner, name: str, value: str
) -> None:
    # Found by schemathesis: an empty Idempotency-Key uploaded without one (200) while a
    # blank one was refused; both now say what a key must be, and nothing is stored.
    stored = server.blobs()
    parts: Parts = [
        ("category", (None, "LOGO", None)),
        ("file", ("logo.png", samples.png(), "image/png")),
    ]
    headers = {**partner.auth(), name: value}
    response = partner.http.request("POST", FILE_PATH, files=parts, headers=headers)
    assert name in assert_error(response, 400, "invalid_idempotency_key")["message"]
    assert server.blobs() == stored


def test_multipart_without_a_boundary_is_refused(server: InProcess, partner: Partner) -> None:
    body = multipart(("category", "LOGO"))

    error = refused(
        server, partner, body, 400, "multipart_malformed", content_type="multipart/form-data"
    )

    assert "boundary" in error["message"]


@pytest.mark.parametrize("cut", [0, 100, 1000])
def test_a_truncated_body_leaves_nothing_behind(
    server: InProcess, partner: Partner, cut: int
) -> None:
    data = samples.jpeg(256, 256)
    body = multipart(("category", "LOGO"), ("file", data, "a.jpg"), close=False)
    body = body[: len(body) - cut]

    refused(server, partner, body, 400, "multipart_malformed")


def test_two_file_parts_are_refused(server: InProcess, partner: Partner) -> None:
    body = multipart(
        ("category", "LOGO"),
        ("file", samples.png(seed=1), "a.png"),
        ("file", samples.png(), "b.png"),
    )

    error = refused(server, partner, body, 400, "multiple_files")

    assert "'file'" in error["message"]


def test_a_file_under_another_field_name_is_refused(server: InProcess, partner: Partner) -> None:
    body = multipart(("category", "LOGO"), ("document", samples.png(), "a.png"))

    error = refused(server, partner, body, 400, "unknown_field")

    assert "'document'" in error["message"]
    assert "'file'" in error["message"]


def test_a_text_field_over_4_kb_is_refused(server: InProcess, partner: Partner) -> None:
    body = multipart(("category", "LOGO"), ("file_url", "http://example.com/" + "a" * 4096))

    error = refused(server, partner, body, 400, "field_too_long")

    assert "'file_url'" in error["message"]


def test_more_than_16_parts_are_refused(server: InProcess, partner: Partner) -> None:
    parts = [(f"extra{i}", "x") for i in range(16)]
    body = multipart(("category", "LOGO"), *parts, ("file", samples.png(), "a.png"))

    error = refused(server, partner, body, 400, "multipart_too_many_parts")

    assert "16" in error["message"]


def test_sixteen_parts_are_still_accepted(server: InProcess, partner: Partner) -> None:
    parts = [(f"extra{i}", "x") for i in range(14)]
    body = multipart(("category", "LOGO"), *parts, ("file", samples.png(), "a.png"))

    assert partner.post_file(body, multipart_type()).status_code == 200


def test_a_repeated_category_is_refused(server: InProcess, partner: Partner) -> None:
    body = multipart(
        ("category", "LOGO"), ("category", "DOCUMENT"), ("file", samples.png(), "a.png")
    )

    error = refused(server, partner, body, 400, "duplicate_field")

    assert "'category'" in error["message"]


def test_a_file_before_its_category_is_stored_correctly(
    server: InProcess, partner: Partner
) -> None:
    data = samples.png(seed=3)
    body = multipart(("file", data, "a.png"), ("code", "NPWP_BADAN"), ("category", "DOCUMENT"))

    response = partner.post_file(body, multipart_type())

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["category"], result["code"], result["size"]) == (
        "DOCUMENT",
        "NPWP_BADAN",
        len(data),
    )
    described = server.http.get(f"{FILE_PATH}/{result['id']}", headers=partner.auth())
    assert described.json()["sha256"] == samples.sha256(data)


def test_a_file_before_a_missing_category_is_refused_without_leftovers(
    server: InProcess, partner: Partner
) -> None:
    body = multipart(("file", samples.png(), "a.png"))

    refused(server, partner, body, 400, "category_missing")


def test_an_oversize_file_after_its_category_is_refused_while_streaming(
    server: InProcess, partner: Partner
) -> None:
    cap = server.services.uploads.target({"category": "PHOTO_PROOF"}).max_bytes
    data = b"\xff\xd8\xff" + b"\x00" * cap
    body = multipart(("category", "PHOTO_PROOF"), ("file", data, "big.jpg"))

    error = refused(server, partner, body, 413, "file_too_large")

    assert "PHOTO_PROOF" in error["message"]
    assert "15 MB" in error["message"]


def test_an_oversize_file_before_its_category_is_refused_too(
    server: InProcess, partner: Partner
) -> None:
    data = b"\xff\xd8\xff" + b"\x00" * (15 * MIB)
    body = multipart(("file", data, "big.jpg"), ("category", "PHOTO_PROOF"))

    refused(server, partner, body, 413, "file_too_large")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ((("category", "PASSPORT"),), "category_invalid"),
        ((("category", "DOCUMENT"),), "code_missing"),
        ((("category", "DOCUMENT"), ("code", "SIM")), "code_invalid"),
    ],
)
def test_field_errors_after_the_file_leave_nothing(
    server: InProcess, partner: Partner, fields: tuple[tuple[str, str], ...], code: str
) -> None:
    body = multipart(*fields, ("file", samples.jpeg(), "a.jpg"))

    refused(server, partner, body, 400, code)


def test_pdf_as_photo_proof_is_refused_and_not_stored(server: InProcess, partner: Partner) -> None:
    body = multipart(("category", "PHOTO_PROOF"), ("file", samples.pdf(), "a.pdf"))

    error = refused(server, partner, body, 415, "type_not_allowed")

    assert "PHOTO_PROOF" in error["message"]


def test_both_file_and_file_url_is_refused(server: InProcess, partner: Partner) -> None:
    body = multipart(
        ("category", "LOGO"),
        ("file_url", "https://example.com/a.png"),
        ("file", samples.png(), "a.png"),
    )

    error = refused(server, partner, body, 400, "file_or_url_required")

    assert "both" in error["message"]


def test_an_unexpected_failure_is_a_500_envelope_and_nothing_is_kept(
    server: InProcess, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire at /secret/path")

    monkeypatch.setattr(server.services.uploads, "_store", explode)
    body = multipart(("category", "LOGO"), ("file", samples.png(), "a.png"))

    error = refused(server, partner, body, 500, "internal_error")

    assert error["type"] == "api_error"
    assert "/secret/path" not in error["message"]


def test_describe_without_a_token_asks_for_one(server: InProcess) -> None:
    response = server.http.get(f"{FILE_PATH}/DCM-0001-1700000000000")

    error = assert_error(response, 401, "token_missing")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert f"{PREFIX}/token" in error["message"]


def test_a_token_sent_without_the_bearer_prefix_is_told_so(
    server: InProcess, partner: Partner
) -> None:
    response = server.http.get(
        f"{FILE_PATH}/DCM-0001-1700000000000", headers={"Authorization": partner.token}
    )

    error = assert_error(response, 401, "token_malformed")
    assert error["message"].startswith(
        "Authorization must be 'Bearer <token>' (RFC 6750 section 2.1); it carried a token "
        "without the 'Bearer ' prefix."
    ), error["message"]
    assert partner.token not in response.text


def test_another_scheme_is_named_and_its_credential_never_echoed(server: InProcess) -> None:
    response = server.http.get(
        f"{FILE_PATH}/DCM-0001-1700000000000", headers={"Authorization": "Basic dXNlcjpzZWNyZXQ="}
    )

    error = assert_error(response, 401, "token_malformed")
    assert "it carried the 'Basic' scheme" in error["message"]
    assert "dXNlcjpzZWNyZXQ" not in response.text


def test_a_bearer_token_on_the_signed_requirements_is_told_to_sign(
    server: InProcess, partner: Partner
) -> None:
    query = "businessType=PERSONAL&businessLegalEntity=PERSEORANGAN"
    response = server.http.get(f"{FILE_PATH}?{query}", headers=partner.auth())

    error = assert_error(response, 401, "header_missing")
    assert error["message"].startswith(
        f"GET {FILE_PATH} takes DOKU's signature headers (Client-Id, Request-Id, "
        "Request-Timestamp, Signature: HMACSHA256 over them), not a bearer token"
    ), error["message"]
    # Signed as DOKU says, the same request is answered (the bearer is then ignored).
    signed = partner.signed(
        "GET", FILE_PATH, query=query + "&brandBusinessLine=RETAIL&businessContactNationality=ID"
    )
    assert signed.status_code == 200, signed.text


def test_upload_without_a_token_is_refused_before_the_body_is_read(server: InProcess) -> None:
    data = multipart(("category", "LOGO"), ("file", samples.png(), "a.png"))
    body = StreamedBody(data)

    response = server.http.post(
        FILE_PATH,
        content=body,
        headers={"Content-Type": multipart_type(), "Content-Length": str(len(data))},
    )

    assert_error(response, 401, "token_missing")
    assert body.pulled == []  # not even the first chunk


def test_a_declared_oversize_body_is_refused_before_it_is_read(
    server: InProcess, partner: Partner
) -> None:
    # A terabyte announced: more than any cap plus what the server drains after a 413.
    body = StreamedBody(multipart(("category", "LOGO"), ("file", samples.png(), "a.png")))
    headers = {**partner.auth(), "Content-Type": multipart_type(), "Content-Length": str(10**12)}

    response = server.http.post(FILE_PATH, content=body, headers=headers)

    error = assert_error(response, 413, "file_too_large")
    assert "15 MB" in error["message"]
    assert body.pulled == []


def test_a_streamed_body_is_pulled_whole_when_accepted(server: InProcess, partner: Partner) -> None:
    # Guards the two tests above: StreamedBody really sees what the app reads.
    data = multipart(("category", "LOGO"), ("file", samples.png(seed=4), "a.png"))
    body = StreamedBody(data, chunk=64)
    headers = {**partner.auth(), "Content-Type": multipart_type(), "Content-Length": str(len(data))}

    response = server.http.post(FILE_PATH, content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert len(body.pulled) > 1
    assert sum(body.pulled) == len(data)


def test_another_partners_file_is_not_found(server: InProcess, partner: Partner) -> None:
    body = multipart(("category", "LOGO"), ("file", samples.png(), "a.png"))
    file_id = partner.post_file(body, multipart_type()).json()["id"]
    other = server.partner()

    foreign = server.http.get(f"{FILE_PATH}/{file_id}", headers=other.auth())
    missing = server.http.get(f"{FILE_PATH}/DCM-0001-0000000000001", headers=other.auth())

    assert_error(foreign, 404, "file_not_found")
    assert_error(missing, 404, "file_not_found")


def test_an_unknown_route_uses_the_envelope(server: InProcess) -> None:
    assert_error(server.http.get(f"{PREFIX}/nope"), 404, "not_found")
    assert_error(server.http.delete(FILE_PATH), 405, "method_not_allowed")


def test_spool_dir_is_where_the_tests_look(server: InProcess) -> None:
    # Guards the "nothing left behind" assertions: they must inspect the real spool.
    assert server.settings.spool_dir == server.data_dir.resolve() / "spool"
    assert server.settings.spool_dir.is_dir()


class Recorder:
    """Stands in for a service and records each call the HTTP layer makes into it."""

    def __init__(self, name: str, inner: object, calls: list[str]) -> None:
        self._name, self._inner, self._calls = name, inner, calls

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._inner, attribute)
        if not callable(value):
            return value

        def recorded(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(f"{self._name}.{attribute}")
            return value(*args, **kwargs)

        return recorded


@pytest.mark.parametrize("source", ["file", "file_url"])
def test_one_upload_crosses_into_the_services_three_times(
    server: InProcess, partner: Partner, source: str
) -> None:
    # The seam issue 6 drew: the route checks the bearer, streams into a spool the use
    # case opened, and hands over once; everything else is the use case's own business.
    token = partner.token  # taken before recording: issuing is not part of the upload
    calls: list[str] = []
    real = server.services
    recorders: dict[str, Any] = {
        name: Recorder(name, getattr(real, name), calls)
        for name in ("clients", "tokens", "signed", "requirements", "uploads", "files")
    }
    server.app.state.services = dataclasses.replace(real, **recorders)
    try:
        if source == "file":
            body = multipart(("category", "LOGO"), ("file", samples.png(), "logo.png"))
        else:  # fetching is refused (no fixture server here), which is the last crossing too
            body = multipart(("category", "LOGO"), ("file_url", "http://127.0.0.1/logo.png"))
        response = server.http.post(
            FILE_PATH,
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": MULTIPART},
        )
    finally:
        server.app.state.services = real

    if source == "file":
        assert response.status_code == 200, response.text
        assert calls == ["tokens.verify", "uploads.open_spool", "uploads.upload_file"]
    else:
        assert_error(response, 422, "address_not_allowed")
        assert calls == ["tokens.verify", "uploads.upload_url"]


def test_spool_writes_and_hashing_run_off_the_event_loop(
    server: InProcess, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 6: the parser's callbacks write and hash on a worker thread, so a big upload
    # never stalls the loop every other request shares. The loop runs on the main thread.
    writers: list[threading.Thread] = []
    original = Spool.write

    def recording(self: Spool, chunk: bytes) -> None:
        writers.append(threading.current_thread())
        original(self, chunk)

    monkeypatch.setattr(Spool, "write", recording)
    data = samples.big_jpeg(3 * MIB)  # several batches
    response = partner.post_file(
        multipart(("category", "LOGO"), ("file", data, "logo.jpg")), MULTIPART
    )

    assert response.status_code == 200, response.text
    assert writers
    assert threading.main_thread() not in writers


def test_a_small_body_is_parsed_on_the_loop_into_memory_and_never_touches_the_disk(
    server: InProcess, partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other side of the test above: a body small enough to parse in place costs no
    # thread hop, and that is safe only because its spool is memory, not a file.
    writers: list[tuple[threading.Thread, bool]] = []
    original = Spool.write

    def recording(self: Spool, chunk: bytes) -> None:
        writers.append((threading.current_thread(), self.in_memory))
        original(self, chunk)

    monkeypatch.setattr(Spool, "write", recording)
    response = partner.post_file(
        multipart(("category", "LOGO"), ("file", samples.jpeg(), "logo.jpg")), MULTIPART
    )

    assert response.status_code == 200, response.text
    assert writers
    assert all(in_memory for _, in_memory in writers)
    assert all(thread is threading.main_thread() for thread, _ in writers)
    assert multipart_module._INLINE_BYTES <= uploads_module.MEMORY_BYTES


def test_an_endless_part_header_name_is_refused(server: InProcess, partner: Partner) -> None:
    # Header values were capped; a header *name* streaming on forever was not.
    body = (
        b"--berkas-test-boundary\r\n"
        + b"X" * (64 * 1024)
        + b': x\r\nContent-Disposition: form-data; name="category"\r\n\r\nLOGO\r\n'
        + b"--berkas-test-boundary--\r\n"
    )
    refused(server, partner, body, 400, "multipart_malformed")
