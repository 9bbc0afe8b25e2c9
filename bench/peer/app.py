"""The careful peer's FastAPI app: DOKU-signed token and requirements requests, RS256
tokens, image uploads, metadata with a signed link, downloads, a sqlite3 row.

Written as a competent engineer would in an afternoon, not sabotaged: the blocking work
(HMAC, RSA, Pillow, sha256, fsync, sqlite3) runs in plain ``def`` endpoints, which FastAPI
puts on its worker threadpool, and everything built once (the RSA key, the link key, the
schema) is built at app creation. What it deliberately leaves out is listed in
bench/peer/README.md.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI, File, Form, Header, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException as StarletteHTTPException

CLIENT_ID = "peer-client"
CLIENT_SECRET = "peer-secret-for-benchmarks-only"  # noqa: S105 - a fixed bench client
TOKEN_LIFETIME_S = 300
# DOKU's signed requests: a Request-Timestamp within 5 minutes of now, either side (berkas'
# default window too, BERKAS_TIMESTAMP_WINDOW_SECONDS=300).
TIMESTAMP_WINDOW_S = 300
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
LINK_LIFETIME_S = 3600  # berkas' default link lifetime (BERKAS_LINK_TTL_SECONDS)
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
);
CREATE TABLE IF NOT EXISTS clients (
    client_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    client_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (client_id, request_id)
)
"""


class PeerError(Exception):
    """A rejection answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def string_to_sign(
    client_id: str, request_id: str, timestamp: str, target: str, body: bytes | None
) -> str:
    """DOKU's string to sign: the four headers' lines, and a Digest line when there is a
    body (base64 of its SHA-256), joined by LF."""
    lines = [
        f"Client-Id:{client_id}",
        f"Request-Id:{request_id}",
        f"Request-Timestamp:{timestamp}",
        f"Request-Target:{target}",
    ]
    if body is not None:
        lines.append(f"Digest:{base64.b64encode(hashlib.sha256(body).digest()).decode()}")
    return "\n".join(lines)


def _hmac_b64(key: bytes, message: str) -> str:
    return base64.b64encode(hmac.new(key, message.encode(), hashlib.sha256).digest()).decode()


def _load_or_create(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes at ``path``, or ``make()`` written there once (0600, never overwritten)."""
    if path.exists():
        return path.read_bytes()
    data = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker wrote it first
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return data


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    def generate() -> bytes:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    key = serialization.load_pem_private_key(_load_or_create(path, generate), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} holds no RSA private key")
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
    """RS256 tokens; the key is loaded or generated once."""

    def __init__(self, key_path: Path) -> None:
        # Built once, never per request: RSA key generation takes tens of milliseconds.
        self._private_key = _load_or_create_key(key_path)
        self._public_key = self._private_key.public_key()

    def issue(self, client_id: str) -> dict[str, Any]:
        now = int(time.time())
        claims = {"sub": client_id, "iat": now, "exp": now + TOKEN_LIFETIME_S}
        return {
            "access_token": jwt.encode(claims, self._private_key, algorithm="RS256"),
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
        }

    def verify(self, authorization: str | None) -> str:
        """The client id a ``Bearer`` header's valid, unexpired token names, else PeerError.

        The token is this server's own signature, so its ``sub`` is a client the server
        knew when it issued it; no database read per request."""
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
        return str(claims["sub"])


def _canonical_id(file_id: str) -> str:
    try:
        return str(uuid.UUID(file_id))
    except ValueError as exc:
        raise PeerError(404, "no such file") from exc


class Store:
    """Clients, Request-Ids and files' rows in ``data_dir/peer.db`` (sqlite3); blobs
    under ``data_dir/blobs``."""

    def __init__(self, data_dir: Path, clients: dict[str, str]) -> None:
        self.blobs = data_dir / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._db_path = data_dir / "peer.db"
        setup = sqlite3.connect(self._db_path, timeout=10.0)
        try:
            setup.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the database file
            setup.executescript(_SCHEMA)
            setup.executemany(
                "INSERT INTO clients (client_id, secret) VALUES (?, ?)"
                " ON CONFLICT (client_id) DO UPDATE SET secret = excluded.secret",
                clients.items(),
            )
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

    def secret(self, client_id: str) -> str | None:
        """The shared secret of ``client_id``, or None for an unknown client."""
        row = (
            self._connection()
            .execute("SELECT secret FROM clients WHERE client_id = ?", (client_id,))
            .fetchone()
        )
        return None if row is None else str(row[0])

    def remember(self, client_id: str, request_id: str) -> None:
        """Record a signed request's Request-Id once; a second time is PeerError 409."""
        try:
            with self._connection() as conn:
                conn.execute(
                    "INSERT INTO requests (client_id, request_id, created_at) VALUES (?, ?, ?)",
                    (client_id, request_id, time.time()),
                )
        except sqlite3.IntegrityError as exc:
            raise PeerError(409, f"Request-Id {request_id[:64]!r} was already used") from exc

    def describe(self, caller: str, file_id: str) -> dict[str, Any]:
        """The row of ``caller``'s file ``file_id``, else PeerError 404."""
        canonical = _canonical_id(file_id)
        row = (
            self._connection()
            .execute(
                "SELECT category, content_type, size, sha256, created_at FROM files"
                " WHERE id = ? AND client_id = ?",
                (canonical, caller),
            )
            .fetchone()
        )
        if row is None:
            raise PeerError(404, "no such file")
        category, content_type, size, sha256, created_at = row
        return {
            "id": canonical,
            "category": category,
            "content_type": content_type,
            "size": size,
            "sha256": sha256,
            "created_at": datetime.fromtimestamp(created_at, UTC).strftime(TIMESTAMP_FORMAT),
        }

    def find(self, file_id: str) -> tuple[Path, str]:
        """The blob path and content type of file ``file_id``, else PeerError 404."""
        canonical = _canonical_id(file_id)
        row = (
            self._connection()
            .execute("SELECT content_type FROM files WHERE id = ?", (canonical,))
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


class Signed:
    """DOKU's signed requests: the client's secret from the database, the timestamp window,
    the HMAC-SHA256 signature, then the Request-Id stored once (a replay is 409)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def verify(self, headers: Mapping[str, str], target: str, body: bytes | None) -> str:
        """The client id of a correctly signed, fresh, first-seen request, else PeerError."""
        values = {}
        for name in ("Client-Id", "Request-Id", "Request-Timestamp", "Signature"):
            value = headers.get(name)
            if not value:
                raise PeerError(401, f"missing {name} header")
            values[name] = value
        client_id, request_id = values["Client-Id"], values["Request-Id"]
        timestamp, signature = values["Request-Timestamp"], values["Signature"]
        if len(request_id) > 128:
            raise PeerError(400, "Request-Id is longer than 128 characters")
        try:
            stamped = datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        except ValueError as exc:
            raise PeerError(401, "Request-Timestamp is not YYYY-MM-DDTHH:MM:SSZ") from exc
        if abs(time.time() - stamped.timestamp()) > TIMESTAMP_WINDOW_S:
            raise PeerError(401, "Request-Timestamp is more than 5 minutes from now")
        secret = self._store.secret(client_id)
        if secret is None:
            raise PeerError(401, "unknown client or wrong signature")
        message = string_to_sign(client_id, request_id, timestamp, target, body)
        expected = "HMACSHA256=" + _hmac_b64(secret.encode(), message)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise PeerError(401, "unknown client or wrong signature")
        # Stored only once the signature holds: nobody else can burn a client's Request-Ids.
        self._store.remember(client_id, request_id)
        return client_id


class Links:
    """Download links signed with HMAC-SHA256 over the file id and the expiry time."""

    def __init__(self, key_path: Path) -> None:
        self._key = _load_or_create(key_path, lambda: os.urandom(32))

    def _signature(self, file_id: str, expires: int) -> str:
        return _hmac_b64(self._key, f"{file_id}\n{expires}").rstrip("=")

    def url(self, file_id: str, lifetime: int = LINK_LIFETIME_S) -> tuple[str, int]:
        """A path with its expiry and signature, and the expiry (Unix seconds)."""
        expires = int(time.time()) + lifetime
        query = urlencode({"expires": expires, "signature": self._signature(file_id, expires)})
        return f"/links/{file_id}?{query}", expires

    def check(self, file_id: str, expires: str, signature: str) -> None:
        try:
            deadline = int(expires)
        except ValueError as exc:
            raise PeerError(403, "invalid link") from exc
        expected = self._signature(file_id, deadline)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise PeerError(403, "invalid link")
        if deadline < time.time():
            raise PeerError(403, "link expired")


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


async def raw_body(request: Request) -> bytes:
    """The request's exact bytes (a route dependency: the Digest is over them)."""
    return await request.body()


Body = Annotated[bytes, Depends(raw_body)]


def create_app(
    data_dir: Path, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET
) -> FastAPI:
    """The peer app storing blobs under ``data_dir/blobs`` and rows in ``data_dir/peer.db``;
    ``client_id`` and its secret go into the clients table at start."""
    tokens = Tokens(data_dir / "peer-key.pem")
    store = Store(data_dir, {client_id: client_secret})
    signed = Signed(store)
    links = Links(data_dir / "peer-link-key")

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
    def requirements(request: Request) -> dict[str, Any]:
        signed.verify(request.headers, request.url.path, None)
        return REQUIREMENTS

    @app.post("/token")
    def token(request: Request, body: Body) -> dict[str, Any]:
        caller = signed.verify(request.headers, request.url.path, body)
        try:
            grant = json.loads(body).get("grant_type")
        except (ValueError, AttributeError) as exc:
            raise PeerError(400, "body is not a JSON object") from exc
        if grant != "client_credentials":
            raise PeerError(400, 'grant_type must be "client_credentials"')
        return tokens.issue(caller)

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
    def describe(caller: Caller, file_id: str) -> dict[str, Any]:
        found = store.describe(caller, file_id)
        link, expires = links.url(found["id"])
        expires_at = datetime.fromtimestamp(expires, UTC).strftime(TIMESTAMP_FORMAT)
        return {**found, "link": link, "link_expires_at": expires_at}

    @app.get("/links/{file_id}")
    def download(file_id: str, expires: str = "", signature: str = "") -> FileResponse:
        links.check(file_id, expires, signature)
        path, content_type = store.find(file_id)
        return FileResponse(path, media_type=content_type)

    return app
