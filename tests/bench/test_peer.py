"""The careful peer (bench/peer) in-process: tokens, uploads, rejections and downloads."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from bench.peer.app import CLIENT_ID, CLIENT_SECRET, MAX_BYTES, create_app
from tests.support import samples
from tests.support.inprocess import Http


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


def _token(http: Http) -> str:
    r = http.post("/token", json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET})
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

    got = client.get(f"/file/{body['id']}", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200
    assert got.content == data
    assert got.headers["content-type"] == "image/jpeg"

    assert client.get(f"/file/{body['id']}").status_code == 401


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


def test_a_wrong_secret_gets_no_token(client: Http) -> None:
    r = client.post("/token", json={"client_id": CLIENT_ID, "client_secret": "nope"})
    assert r.status_code == 401
    assert "error" in r.json()


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


def test_healthz_and_requirements(client: Http) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/requirements")
    assert r.status_code == 200
    assert {c["category"] for c in r.json()["categories"]} == {"DOCUMENT/KTP", "DOCUMENT/SELFIE"}
