"""The real app, built by ``berkas.wiring`` on a temporary data dir, driven in-process.

Same wiring as ``berkas serve`` (SQLite, local disk, generated keys), no socket: requests go
through ``httpx.ASGITransport`` straight into the ASGI app.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from berkas.api.app import create_app
from berkas.config import load_settings
from berkas.core import signing
from berkas.services.bundle import Services
from berkas.wiring import prepare

PREFIX = "/adv-core-api/partner/v1.0"
TOKEN_PATH = f"{PREFIX}/token"
FILE_PATH = f"{PREFIX}/file"


class InProcess:
    """One container and app on ``data_dir``; ``http`` never raises the app's exceptions."""

    def __init__(self, data_dir: Path, **overrides: object) -> None:
        self.data_dir = data_dir
        self.settings = load_settings(data_dir=data_dir, **overrides)
        # As `berkas serve` starts: chores first (this is the data dir's only server).
        self.container: Services = prepare(self.settings, serving=True)
        self.app = create_app(self.container)
        self.http = Http(self.app)

    def close(self) -> None:
        self.container.close()

    def partner(self, client_id: str | None = None) -> Partner:
        client = self.container.clients.create(client_id)
        return Partner(self.http, client.client_id, client.secret_key)

    def spooled(self) -> list[Path]:
        """Files left in the spool directory (a finished request leaves none)."""
        return sorted(self.settings.spool_dir.iterdir())

    def blobs(self) -> list[Path]:
        """Stored objects (outside the store's temp area)."""
        root = self.data_dir / "blobs"
        return sorted(p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts)


class Http:
    """A synchronous face on ``httpx.AsyncClient`` + ``ASGITransport``, one loop per call.

    The app's unexpected exceptions become its 500 response, as under a real server.
    """

    def __init__(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=self._transport, base_url="http://testserver"
            ) as client:
                return await client.request(method, url, **kwargs)

        return asyncio.run(send())

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)


class Partner:
    """A partner integration: signs DOKU requests and carries a bearer token."""

    def __init__(self, http: Http, client_id: str, secret_key: str) -> None:
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
        signed_headers = signing.signed_headers(
            client_id=self.client_id,
            secret_key=self.secret_key,
            target=path,
            body=body,
            request_id=request_id,
        )
        url = f"{path}?{query}" if query else path
        return self.http.request(
            method, url, content=body, headers={**signed_headers, **(headers or {})}
        )

    def token_request(
        self, payload: dict[str, Any] | bytes, *, request_id: str | None = None
    ) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.signed(
            "POST",
            TOKEN_PATH,
            body,
            request_id=request_id,
            headers={"Content-Type": "application/json"},
        )

    @property
    def token(self) -> str:
        if self._token is None:
            response = self.token_request({"grant_type": "client_credentials"})
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
        return self.http.post(FILE_PATH, content=body, headers=headers)
