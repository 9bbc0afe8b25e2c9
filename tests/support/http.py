"""HTTP at the byte level, for the suites that send what no HTTP library would: raw
requests on a socket, hand-built multipart bodies, and what the server then counted."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

_REQUESTS = re.compile(r"^berkas_http_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.M)
_ANSWERS = re.compile(r"^berkas_http_connection_answers_total\{([^}]*)\} ([0-9.e+]+)$", re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def multipart_body(
    parts: list[tuple[str, str | None, bytes]], boundary: str | None = None
) -> tuple[bytes, str]:
    """``(body, content_type)`` for ``(name, filename or None, value)`` parts, as a browser
    frames them (RFC 7578)."""
    boundary = boundary or f"berkas-{secrets.token_hex(8)}"
    out = bytearray()
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_response(sock: socket.socket) -> RawResponse | None:
    """One response read off ``sock`` (Content-Length framed, or to EOF); None if the
    server closed without answering."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return None if not data else _parse(data, b"")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    response = _parse(head + b"\r\n\r\n", b"")
    length = int(response.headers.get("content-length", "-1"))
    while length < 0 or len(rest) < length:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        rest += chunk
    response.body = rest if length < 0 else rest[:length]
    return response


def _parse(head: bytes, body: bytes) -> RawResponse:
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body)


def exchange(port: int, raw: bytes, *, timeout: float = 30.0) -> RawResponse | None:
    """Send ``raw`` on a fresh connection and read one response (None: closed unanswered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # Refused while we were still sending: the answer may be waiting all the same.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        return read_response(sock)


def metric_statuses(base_url: str, route: str) -> dict[str, int]:
    """``{status: count}`` the server recorded for ``route`` (a template) in /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    counts: dict[str, int] = {}
    for labels, value in _REQUESTS.findall(text):
        found = dict(_LABEL.findall(labels))
        if found.get("route") == route:
            counts[found["status"]] = counts.get(found["status"], 0) + int(float(value))
    return counts


def connection_answers(base_url: str) -> dict[tuple[str, str], int]:
    """``{(status, code): count}`` of what the connection layer answered before any route."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    counts = {}
    for labels, value in _ANSWERS.findall(text):
        found = dict(_LABEL.findall(labels))
        counts[found["status"], found["code"]] = int(float(value))
    return counts


def spooled(data_dir: Path) -> list[Path]:
    """What the server's spool holds now (partial uploads)."""
    return sorted((data_dir / "spool").glob("*"))


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
