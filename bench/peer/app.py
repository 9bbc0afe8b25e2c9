"""The careful peer's FastAPI app: RS256 tokens, image uploads, downloads, a sqlite3 row.

Written as a competent engineer would in an afternoon, not sabotaged: the blocking work
(RSA, Pillow, sha256, fsync, sqlite3) runs in plain ``def`` endpoints, which FastAPI puts
on its worker threadpool, and everything built once (the RSA key, the schema) is built at
app creation. What it deliberately leaves out is listed in bench/peer/README.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

CLIENT_ID = "peer-client"
CLIENT_SECRET = "peer-secret-for-benchmarks-only"  # noqa: S105 - a fixed bench client
TOKEN_LIFETIME_S = 300
MAX_BYTES = 10 * 1024 * 1024
FORMATS = ("JPEG", "PNG")
_IMAGES = ["image/jpeg", "image/png"]
REQUIREMENTS = {
    "categories": [
        {"category": "DOCUMENT/KTP", "accepts": _IMAGES, "max_bytes": MAX_BYTES},
        {"category": "DOCUMENT/SELFIE", "accepts": _IMAGES, "max_bytes": MAX_BYTES},
    ]
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    category TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


class PeerError(Exception):
    """A rejection answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TokenRequest(BaseModel):
    client_id: str
    client_secret: str


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{path} holds no RSA private key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def _inspect_image(data: bytes) -> str:
    """The MIME type of a JPEG or PNG that Pillow decodes completely, else PeerError."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            # Pillow only *warns* (DecompressionBombWarning) between MAX_IMAGE_PIXELS and
            # twice that. Turning the warning into an error with warnings.catch_warnings()
            # is not thread-safe (it swaps process-wide state) and these endpoints run on a
            # threadpool, so the same bound is checked here before decoding.
            if img.width * img.height > (Image.MAX_IMAGE_PIXELS or 0) > 0:
                raise PeerError(400, f"image is {img.width}x{img.height} pixels, too many")
            img.load()
            mime = Image.MIME[img.format or ""]
    except UnidentifiedImageError as exc:
        raise PeerError(415, "file is not a JPEG or PNG image") from exc
    except Image.DecompressionBombError as exc:
        raise PeerError(400, str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise PeerError(400, f"image does not decode: {exc}") from exc
    return mime


def _write_blob(path: Path, data: bytes) -> None:
    # Same durability as berkas: the bytes and the new directory entry are on disk before
    # the row that points at them is committed.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:  # os.write may write less than asked
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Tokens:
    """RS256 tokens for the one fixed client; the key is loaded or generated once."""

    def __init__(self, key_path: Path, client_id: str, client_secret: str) -> None:
        # Built once, never per request: RSA key generation takes tens of milliseconds.
        self._private_key = _load_or_create_key(key_path)
        self._public_key = self._private_key.public_key()
        self._client_id = client_id
        self._client_secret = client_secret

    def issue(self, client_id: str, client_secret: str) -> dict[str, Any]:
        id_ok = hmac.compare_digest(client_id.encode(), self._client_id.encode())
        secret_ok = hmac.compare_digest(client_secret.encode(), self._client_secret.encode())
        if not (id_ok and secret_ok):
            raise PeerError(401, "unknown client or wrong secret")
        now = int(time.time())
        claims = {"sub": self._client_id, "iat": now, "exp": now + TOKEN_LIFETIME_S}
        return {
            "access_token": jwt.encode(claims, self._private_key, algorithm="RS256"),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
        }

    def verify(self, authorization: str | None) -> str:
        """The client id a ``Bearer`` header's valid, unexpired token names, else PeerError."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise PeerError(401, "missing bearer token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise PeerError(401, f"invalid token: {exc}") from exc
        if claims["sub"] != self._client_id:
            raise PeerError(401, "invalid token: unknown client")
        return self._client_id


class Store:
    """Blobs under ``data_dir/blobs``, one row each in ``data_dir/peer.db`` (sqlite3)."""

    def __init__(self, data_dir: Path) -> None:
        self.blobs = data_dir / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._db_path = data_dir / "peer.db"
        setup = sqlite3.connect(self._db_path)
        try:
            setup.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the database file
            setup.execute(_SCHEMA)
            setup.commit()
        finally:
            setup.close()
        # One sqlite3 connection per worker thread, opened on first use: opening one per
        # request would pay the open and the pragmas every time, and one shared connection
        # would serialise every request behind its lock. The pool threads are long-lived
        # (anyio's threadpool), so this is a handful of connections, closed at shutdown.
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._opened_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._db_path, timeout=10.0, check_same_thread=False)
            conn.execute("PRAGMA synchronous=FULL")  # per connection: fsync at each commit
            self._local.conn = conn
            with self._opened_lock:
                self._opened.append(conn)
        return conn

    def add(self, caller: str, category: str, data: bytes, content_type: str) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        file_id = str(uuid.uuid4())
        path = self.blobs / file_id
        _write_blob(path, data)
        try:
            conn = self._connection()
            with conn:  # commits, or rolls back on error
                conn.execute(
                    "INSERT INTO files (id, client_id, category, sha256, size, content_type,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (file_id, caller, category, digest, len(data), content_type, time.time()),
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return {"id": file_id, "sha256": digest, "size": len(data), "content_type": content_type}

    def find(self, caller: str, file_id: str) -> tuple[Path, str]:
        """The blob path and content type of ``caller``'s file ``file_id``, else PeerError."""
        try:
            canonical = str(uuid.UUID(file_id))
        except ValueError as exc:
            raise PeerError(404, "no such file") from exc
        row = (
            self._connection()
            .execute(
                "SELECT content_type FROM files WHERE id = ? AND client_id = ?",
                (canonical, caller),
            )
            .fetchone()
        )
        if row is None:
            raise PeerError(404, "no such file")
        return self.blobs / canonical, str(row[0])

    def close(self) -> None:
        with self._opened_lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PeerError)
    async def peer_error(_: Request, exc: PeerError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = sorted({".".join(str(p) for p in e["loc"][1:]) for e in exc.errors()})
        return JSONResponse({"error": f"invalid or missing: {', '.join(fields)}"}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


def bearer(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    """The caller's client id, from a valid bearer token (a route dependency)."""
    tokens: Tokens = request.app.state.tokens
    return tokens.verify(authorization)


# Module level, not a closure in create_app: with postponed annotations FastAPI resolves
# ``Depends(bearer)`` in the module's globals.
Caller = Annotated[str, Depends(bearer)]


def create_app(
    data_dir: Path, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET
) -> FastAPI:
    """The peer app storing blobs under ``data_dir/blobs`` and rows in ``data_dir/peer.db``."""
    tokens = Tokens(data_dir / "peer-key.pem", client_id, client_secret)
    store = Store(data_dir)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="careful peer", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.store = store
    app.state.tokens = tokens
    _add_error_handlers(app)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/requirements")
    def requirements() -> dict[str, Any]:
        return REQUIREMENTS

    @app.post("/token")
    def token(body: TokenRequest) -> dict[str, Any]:
        return tokens.issue(body.client_id, body.client_secret)

    @app.post("/file")
    def upload(
        caller: Caller,
        category: Annotated[str, Form(min_length=1, max_length=64)],
        file: Annotated[UploadFile, File()],
    ) -> dict[str, Any]:
        # Starlette has already spooled the whole part to a temporary file; reading one byte
        # past the cap tells an oversize file without holding more than the cap in memory.
        data = file.file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise PeerError(413, f"file is larger than {MAX_BYTES // (1024 * 1024)} MB")
        if not data:
            raise PeerError(400, "file is empty")
        content_type = _inspect_image(data)
        return store.add(caller, category, data, content_type)

    @app.get("/file/{file_id}")
    def download(caller: Caller, file_id: str) -> FileResponse:
        path, content_type = store.find(caller, file_id)
        return FileResponse(path, media_type=content_type)

    return app
