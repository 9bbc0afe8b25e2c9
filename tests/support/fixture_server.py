"""A loopback HTTP(S) server for fetcher tests that records every connection it accepts.

Routes are plain functions; canned ones serve bytes, redirect, fail, drip slowly or stream
forever. ``tls_pair`` makes a throwaway CA and certificate so HTTPS can be tested too.
``free_port`` is the one helper every suite uses to pick a loopback port for a server.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Route = Callable[["_Handler", "FixtureServer"], None]


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server parsed it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]


class FixtureServer:
    """Serve ``routes`` on ``host`` (a loopback address) and a free port, in a thread.

    ``connections`` lists the peer of every accepted TCP connection, before any TLS or
    HTTP parsing, so "saw nothing" really means nothing connected.
    """

    def __init__(self, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.routes: dict[str, Route] = {}
        self.connections: list[tuple[str, int]] = []
        self.requests: list[SeenRequest] = []
        self.sni: list[str | None] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._tls = tls
        if tls is not None:
            tls.sni_callback = self._record_sni
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def route(self, path: str, handler: Route) -> None:
        self.routes[path] = handler

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()  # joins the handler threads (block_on_close)
        self._thread.join()

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        with self._lock:
            self.sni.append(name)

    def _accepted(self, peer: tuple[str, int], sock: socket.socket) -> socket.socket:
        with self._lock:
            self.connections.append(peer)
        if self._tls is None:
            return sock
        # The handshake runs in the handler thread, so a stalled client cannot block accept.
        return self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)

    def _seen(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(socketserver.ThreadingTCPServer):
    # ThreadingTCPServer, not http.server.HTTPServer: the latter calls getfqdn() on bind,
    # which may send a DNS query, and these tests must not leave loopback.
    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: FixtureServer) -> None:
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in owner.host else socket.AF_INET
        super().__init__((owner.host, 0), _Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, peer = self.socket.accept()
        return self.owner._accepted(peer[:2], sock), peer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hang up on purpose (caps, timeouts, refused certificates); keep quiet.
        error = sys.exc_info()[1]
        if error is not None:
            self.owner.errors.append(error)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # no handler thread outlives a stuck client by much

    def do_GET(self) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        owner._seen(SeenRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
        handler = owner.routes.get(path)
        if handler is None:
            send(404, b"no such fixture route")(self, owner)
            return
        try:
            handler(self, owner)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


def send(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
) -> Route:
    """Answer with ``status`` and ``body`` (with a Content-Length)."""

    def route(handler: _Handler, _server: FixtureServer) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return route


def redirect(location: str, status: int = 302) -> Route:
    """Answer with a redirect to ``location``."""
    return send(status, b"", headers={"Location": location})


def drip(interval: float, *, declared: int = 1_000_000) -> Route:
    """Promise ``declared`` bytes, then send one every ``interval`` seconds."""

    def route(handler: _Handler, server: FixtureServer) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(declared))
        handler.end_headers()
        for _ in range(declared):
            if server.stopping.wait(interval):
                return
            handler.wfile.write(b"x")
            handler.wfile.flush()

    return route


def endless(chunk: int = 65536) -> Route:
    """Stream a body with no length, forever (until the client hangs up)."""

    def route(handler: _Handler, server: FixtureServer) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        handler.end_headers()
        block = b"\0" * chunk
        while not server.stopping.is_set():
            handler.wfile.write(block)

    return route


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tls_pair(hostname: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``hostname``, and a client context trusting
    only the throwaway CA that issued it."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "berkas test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    cert_pem = leaf.public_bytes(pem)
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # load_cert_chain reads only files.
    with tempfile.TemporaryDirectory() as tmp:
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode("ascii"))
    return server, client


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` passes (server threads lag a little)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()
