"""The careful peer (bench/peer) in-process: DOKU-signed requests, tokens, uploads,
rejections, metadata and downloads through signed links."""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from bench.peer.app import (
    CLIENT_ID,
    CLIENT_SECRET,
    MAX_BYTES,
    Links,
    create_app,
    string_to_sign,
)
from berkas.core import signing
from tests.support import samples
from tests.support.inprocess import Http
from tests.support.partner import Partner

TOKEN_BODY = json.dumps({"grant_type": "client_credentials"}).encode()


@contextlib.contextmanager
def _serving(data_dir: Path) -> Iterator[Http]:
    # httpx.ASGITransport runs no lifespan, so the per-thread sqlite3 connections are
    # closed here, as the app's shutdown would.
    app = create_app(data_dir)
    try:
        yield Http(app)
    finally:
        app.state.store.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Http]:
    with _serving(tmp_path) as http:
        yield http


def _partner(http: Http, secret: str = CLIENT_SECRET) -> Partner:
    # Partner signs with berkas.core.signing: the peer must accept what berkas' SDK sends.
    return Partner(http, CLIENT_ID, secret)


def _token(http: Http) -> str:
    r = _partner(http).signed("POST", "/token", TOKEN_BODY)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"
    assert r.json()["expires_in"] == 300
    token: str = r.json()["access_token"]
    return token


def _upload(http: Http, token: str, data: bytes, name: str = "ktp.jpg") -> httpx.Response:
    return http.post(
        "/file",
        headers={"Authorization": f"Bearer {token}"},
        data={"category": "DOCUMENT/KTP"},
        files={"file": (name, data, "application/octet-stream")},
    )


def test_a_jpeg_is_stored_with_its_sha256_and_downloads_byte_for_byte(
    client: Http, tmp_path: Path
) -> None:
    token = _token(client)
    data = samples.jpeg(seed=3)
    r = client.post(
        "/file",
        headers={"Authorization": f"Bearer {token}"},
        data={"category": "DOCUMENT/KTP"},
        files={"file": ("ktp.jpg", data, "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sha256"] == samples.sha256(data)
    assert body["size"] == len(data)
    assert body["content_type"] == "image/jpeg"
    assert (tmp_path / "blobs" / body["id"]).read_bytes() == data

    meta = client.get(f"/file/{body['id']}", headers={"Authorization": f"Bearer {token}"})
    assert meta.status_code == 200, meta.text
    described = meta.json()
    assert described["id"] == body["id"]
    assert described["sha256"] == body["sha256"]
    assert described["size"] == len(data)
    assert described["category"] == "DOCUMENT/KTP"
    assert described["link"].startswith(f"/links/{body['id']}?expires=")

    got = client.get(described["link"])  # the link alone, no bearer token
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "image/jpeg"

    assert client.get(f"/file/{body['id']}").status_code == 401


def test_a_tampered_or_expired_link_is_403(client: Http) -> None:
    token = _token(client)
    stored = _upload(client, token, samples.jpeg()).json()
    auth = {"Authorization": f"Bearer {token}"}
    link = client.get(f"/file/{stored['id']}", headers=auth).json()["link"]
    path, _, query = link.partition("?")
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    later = int(params["expires"]) + 1
    other = _upload(client, token, samples.jpeg(seed=2)).json()["id"]
    for tampered in (
        f"{path}?expires={later}&signature={params['signature']}",
        f"/links/{other}?{query}",
        path,
    ):
        r = client.get(tampered)
        assert r.status_code == 403, tampered


def test_an_expired_link_is_403(client: Http, tmp_path: Path) -> None:
    stored = _upload(client, _token(client), samples.jpeg()).json()
    expired, _ = Links(tmp_path / "peer-link-key").url(stored["id"], lifetime=-1)
    r = client.get(expired)
    assert r.status_code == 403
    assert r.json() == {"error": "link expired"}


def test_requirements_need_a_signed_request(client: Http) -> None:
    assert client.get("/requirements").status_code == 401
    r = _partner(client).signed("GET", "/requirements")
    assert r.status_code == 200, r.text
    assert {c["category"] for c in r.json()["categories"]} == {"DOCUMENT/KTP", "DOCUMENT/SELFIE"}


def test_a_png_is_accepted_as_png(client: Http) -> None:
    data = samples.png(seed=1)
    r = client.post(
        "/file",
        headers={"Authorization": f"Bearer {_token(client)}"},
        data={"category": "DOCUMENT/SELFIE"},
        files={"file": ("selfie.png", data, "image/png")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["content_type"] == "image/png"


def test_the_key_survives_a_restart_so_tokens_stay_valid(tmp_path: Path) -> None:
    with _serving(tmp_path) as first:
        token = _token(first)
    with _serving(tmp_path) as second:
        r = second.post(
            "/file",
            headers={"Authorization": f"Bearer {token}"},
            data={"category": "DOCUMENT/KTP"},
            files={"file": ("ktp.jpg", samples.jpeg(), "image/jpeg")},
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("client_id", "request_id", "timestamp", "target", "body"),
    [
        ("peer-client", "r-1", "2024-05-01T10:00:00Z", "/token", b'{"a": 1}'),
        ("peer-client", "r-2", "2024-05-01T10:00:00Z", "/requirements", None),
        ("c", "r-3", "2024-05-01T10:00:00Z", "/token", b""),
    ],
)
def test_the_string_to_sign_is_berkas_own(
    client_id: str, request_id: str, timestamp: str, target: str, body: bytes | None
) -> None:
    expected = signing.string_to_sign(
        client_id=client_id,
        request_id=request_id,
        timestamp=timestamp,
        target=target,
        digest=None if body is None else signing.digest(body),
    )
    assert string_to_sign(client_id, request_id, timestamp, target, body) == expected


def test_a_wrong_secret_gets_no_token(client: Http) -> None:
    r = _partner(client, secret="nope").signed("POST", "/token", TOKEN_BODY)
    assert r.status_code == 401
    assert r.json() == {"error": "unknown client or wrong signature"}


def test_a_signature_over_another_body_is_refused(client: Http) -> None:
    headers = signing.signed_headers(
        client_id=CLIENT_ID, secret_key=CLIENT_SECRET, target="/token", body=b"{}"
    )
    r = client.post("/token", content=TOKEN_BODY, headers=headers)
    assert r.status_code == 401, r.text


def test_an_unknown_client_gets_no_token(client: Http) -> None:
    r = Partner(client, "someone-else", CLIENT_SECRET).signed("POST", "/token", TOKEN_BODY)
    assert r.status_code == 401


@pytest.mark.parametrize("minutes", [-6, 6])
def test_a_timestamp_outside_five_minutes_is_refused(client: Http, minutes: int) -> None:
    headers = signing.signed_headers(
        client_id=CLIENT_ID,
        secret_key=CLIENT_SECRET,
        target="/token",
        body=TOKEN_BODY,
        timestamp=datetime.now(UTC) + timedelta(minutes=minutes),
    )
    r = client.post("/token", content=TOKEN_BODY, headers=headers)
    assert r.status_code == 401, r.text
    assert "5 minutes" in r.json()["error"]


def test_a_timestamp_four_minutes_old_is_accepted(client: Http) -> None:
    headers = signing.signed_headers(
        client_id=CLIENT_ID,
        secret_key=CLIENT_SECRET,
        target="/token",
        body=TOKEN_BODY,
        timestamp=datetime.now(UTC) - timedelta(minutes=4),
    )
    assert client.post("/token", content=TOKEN_BODY, headers=headers).status_code == 200


@pytest.mark.parametrize("missing", ["Client-Id", "Request-Id", "Request-Timestamp", "Signature"])
def test_a_missing_signing_header_is_401(client: Http, missing: str) -> None:
    headers = signing.signed_headers(
        client_id=CLIENT_ID, secret_key=CLIENT_SECRET, target="/token", body=TOKEN_BODY
    )
    del headers[missing]
    r = client.post("/token", content=TOKEN_BODY, headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": f"missing {missing} header"}


def test_a_replayed_request_id_is_409(client: Http) -> None:
    request_id = str(uuid.uuid4())
    first = _partner(client).signed("POST", "/token", TOKEN_BODY, request_id=request_id)
    assert first.status_code == 200, first.text
    again = _partner(client).signed("POST", "/token", TOKEN_BODY, request_id=request_id)
    assert again.status_code == 409, again.text
    assert "already used" in again.json()["error"]
    # Requirements share the store: a Request-Id is single-use across endpoints.
    other = _partner(client).signed("GET", "/requirements", request_id=request_id)
    assert other.status_code == 409


def test_a_replay_is_refused_after_a_restart(tmp_path: Path) -> None:
    request_id = str(uuid.uuid4())
    with _serving(tmp_path) as first:
        r = _partner(first).signed("POST", "/token", TOKEN_BODY, request_id=request_id)
        assert r.status_code == 200
    with _serving(tmp_path) as second:
        r = _partner(second).signed("POST", "/token", TOKEN_BODY, request_id=request_id)
        assert r.status_code == 409


def test_a_badly_signed_request_does_not_burn_its_request_id(client: Http) -> None:
    request_id = str(uuid.uuid4())
    forged = _partner(client, secret="nope").signed(
        "POST", "/token", TOKEN_BODY, request_id=request_id
    )
    assert forged.status_code == 401
    r = _partner(client).signed("POST", "/token", TOKEN_BODY, request_id=request_id)
    assert r.status_code == 200, r.text


def test_grant_type_must_be_client_credentials(client: Http) -> None:
    r = _partner(client).signed("POST", "/token", b'{"grant_type": "password"}')
    assert r.status_code == 400
    assert "grant_type" in r.json()["error"]


def _forged(**claims: object) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    payload = {"sub": CLIENT_ID, "iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, other, algorithm="RS256")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("forged", id="signed-by-another-key"),
        pytest.param("expired", id="expired"),
        pytest.param("no-exp", id="no-exp-claim"),
        pytest.param("hs256", id="hs256-not-rs256"),
        pytest.param("garbage", id="not-a-jwt"),
    ],
)
def test_a_bad_token_is_401(client: Http, tmp_path: Path, token: str) -> None:
    key = serialization.load_pem_private_key(
        (tmp_path / "peer-key.pem").read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    now = int(time.time())
    tokens = {
        "forged": _forged(),
        "expired": jwt.encode(
            {"sub": CLIENT_ID, "iat": now - 600, "exp": now - 300}, key, algorithm="RS256"
        ),
        "no-exp": jwt.encode({"sub": CLIENT_ID, "iat": now}, key, algorithm="RS256"),
        "hs256": jwt.encode(
            {"sub": CLIENT_ID, "iat": now, "exp": now + 300}, "x" * 32, algorithm="HS256"
        ),
        "garbage": "not.a.jwt",
    }
    r = _upload(client, tokens[token], samples.jpeg())
    assert r.status_code == 401, r.text
    assert "invalid token" in r.json()["error"]
    assert not list((tmp_path / "blobs").iterdir())


def test_a_missing_token_is_401(client: Http) -> None:
    r = client.post(
        "/file",
        data={"category": "DOCUMENT/KTP"},
        files={"file": ("ktp.jpg", samples.jpeg(), "image/jpeg")},
    )
    assert r.status_code == 401
    assert r.json() == {"error": "missing bearer token"}


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(samples.pdf(), id="pdf"),
        pytest.param(b"hello, this is text\n" * 50, id="text"),
        pytest.param(
            _gif(),
            id="gif",
        ),
    ],
)
def test_a_non_image_is_415(client: Http, tmp_path: Path, data: bytes) -> None:
    r = client.post(
        "/file",
        headers={"Authorization": f"Bearer {_token(client)}"},
        data={"category": "DOCUMENT/KTP"},
        files={"file": ("ktp.jpg", data, "image/jpeg")},
    )
    assert r.status_code == 415, r.text
    assert r.json() == {"error": "file is not a JPEG or PNG image"}
    assert not list((tmp_path / "blobs").iterdir())


def test_a_truncated_jpeg_is_400(client: Http) -> None:
    data = samples.jpeg(width=256, height=256)
    r = client.post(
        "/file",
        headers={"Authorization": f"Bearer {_token(client)}"},
        data={"category": "DOCUMENT/KTP"},
        files={"file": ("ktp.jpg", data[: len(data) // 2], "image/jpeg")},
    )
    assert r.status_code == 400, r.text
    assert "does not decode" in r.json()["error"]


def test_an_oversize_file_is_413(client: Http, tmp_path: Path) -> None:
    # A real JPEG head followed by padding: only the size can reject it.
    data = samples.jpeg() + b"\0" * (MAX_BYTES + 1 - len(samples.jpeg()))
    assert len(data) == MAX_BYTES + 1
    r = client.post(
        "/file",
        headers={"Authorization": f"Bearer {_token(client)}"},
        data={"category": "DOCUMENT/KTP"},
        files={"file": ("ktp.jpg", data, "image/jpeg")},
    )
    assert r.status_code == 413, r.text
    assert "larger than 10 MB" in r.json()["error"]
    assert not list((tmp_path / "blobs").iterdir())


def test_a_missing_category_is_400(client: Http) -> None:
    r = client.post(
        "/file",
        headers={"Authorization": f"Bearer {_token(client)}"},
        files={"file": ("ktp.jpg", samples.jpeg(), "image/jpeg")},
    )
    assert r.status_code == 400, r.text
    assert "category" in r.json()["error"]


def test_an_unknown_file_id_is_404(client: Http) -> None:
    auth = {"Authorization": f"Bearer {_token(client)}"}
    assert client.get("/file/00000000-0000-4000-8000-000000000000", headers=auth).status_code == 404
    assert client.get("/file/..%2Fpeer.db", headers=auth).status_code == 404


def test_healthz(client: Http) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
