"""A partner integration speaking DOKU's wire protocol, over whichever transport a suite has.

``Partner`` signs requests with ``berkas.core.signing``, caches a bearer token and posts
files. It sends through a ``Transport``: ``inprocess.Http`` (the ASGI app, no socket) or
``server.Loopback`` (a real ``berkas serve`` over HTTP); an ``httpx.Client`` with a
``base_url`` would do too.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

import httpx

from berkas.core import signing
from berkas.core.wire import API_PREFIX
from berkas.services.client_cache import CLIENT_CACHE_SECONDS

PREFIX = API_PREFIX
TOKEN_PATH = f"{PREFIX}/token"
FILE_PATH = f"{PREFIX}/file"

# What ``Partner.upload`` sends as httpx's ``files``: (field, (filename, value, type)).
Parts = list[tuple[str, tuple[str | None, bytes | str, str | None]]]


class Transport(Protocol):
    """Sends one request to a path (the transport knows the server) and returns the answer."""

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        files: Parts | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = ...,
    ) -> httpx.Response: ...


class Partner:
    """A partner integration: signs DOKU requests and carries a bearer token."""

    def __init__(self, http: Transport, client_id: str, secret_key: str) -> None:
        self.http = http
        self.client_id = client_id
        self.secret_key = secret_key
        self._token: str | None = None

    def signed(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        query: str = "",
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send a DOKU-signed request (a JSON body, if any).

        The signature covers ``path``, which may carry a query of its own; ``query`` is
        appended unsigned (berkas accepts both, DESIGN 2.1). ``headers`` win over ours.
        """
        signed_headers = signing.signed_headers(
            client_id=self.client_id,
            secret_key=self.secret_key,
            target=path,
            body=body,
            request_id=request_id,
        )
        if body is not None:
            signed_headers["Content-Type"] = "application/json"
        url = f"{path}?{query}" if query else path
        return self.http.request(
            method, url, content=body, headers={**signed_headers, **(headers or {})}
        )

    def token_request(
        self, payload: dict[str, Any] | bytes, *, request_id: str | None = None
    ) -> httpx.Response:
        """POST /token with ``payload`` (a dict as JSON, bytes as they are)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.signed("POST", TOKEN_PATH, body, request_id=request_id)

    def get_token(self, valid_time: str = "60") -> httpx.Response:
        return self.token_request({"grant_type": "client_credentials", "valid_time": valid_time})

    @property
    def token(self) -> str:
        if self._token is None:
            response = self.get_token()
            assert response.status_code == 200, response.text
            self._token = str(response.json()["token"])
        return self._token

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post_file(self, body: bytes, content_type: str | None) -> httpx.Response:
        """POST raw bytes to the upload endpoint with the given Content-Type (or none)."""
        headers = self.auth()
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.http.request("POST", FILE_PATH, content=body, headers=headers)

    def upload(
        self,
        content: bytes | None,
        *,
        category: str = "DOCUMENT",
        code: str | None = "KTP",
        filename: str = "document.jpg",
        file_url: str | None = None,
        token: str | None = None,
        timeout: float = 60,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST /file as multipart, as an HTTP library builds it: the fields, then the file."""
        # Text fields go as (None, value) parts so the body is multipart even without a file.
        parts: Parts = [("category", (None, category, None))]
        if code is not None:
            parts.append(("code", (None, code, None)))
        if file_url is not None:
            parts.append(("file_url", (None, file_url, None)))
        if content is not None:
            parts.append(("file", (filename, content, "application/octet-stream")))
        sent = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        return self.http.request("POST", FILE_PATH, files=parts, headers=sent, timeout=timeout)


# A change `berkas clients ...` makes (its own process) reaches a serving node on the same
# data dir at its next request (the marker file), any other node within the client
# cache's bound (docs/design.md 2.1); a few seconds more for a loaded machine.
CLIENT_CHANGE_SECONDS = CLIENT_CACHE_SECONDS + 5


def until_token_refused(http: Transport, token: str) -> None:
    """Wait, at most ``CLIENT_CHANGE_SECONDS``, until a server refuses ``token`` (401):
    for tests that disable a client or rotate its secret through the CLI, then assert
    exactly how it is refused."""
    deadline = time.monotonic() + CLIENT_CHANGE_SECONDS
    while True:
        answer = http.request(
            "GET",
            f"{PREFIX}/file/DCM-0001-0000000000000",
            headers={"Authorization": f"Bearer {token}"},
        )
        if answer.status_code == 401 or time.monotonic() > deadline:
            return
        time.sleep(0.1)
