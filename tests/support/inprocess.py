"""The real app, built by ``berkas.wiring`` on a temporary data dir, driven in-process.

Same wiring as ``berkas serve`` (SQLite, local disk, generated keys), no socket: requests go
through ``httpx.ASGITransport`` straight into the ASGI app.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from berkas.api.app import create_app
from berkas.config import load_settings
from berkas.services.bundle import Services
from berkas.wiring import prepare
from tests.support.partner import Partner


class InProcess:
    """One services and app on ``data_dir``; ``http`` never raises the app's exceptions."""

    def __init__(self, data_dir: Path, **overrides: object) -> None:
        self.data_dir = data_dir
        self.settings = load_settings(data_dir=data_dir, **overrides)
        # As `berkas serve` starts: chores first (this is the data dir's only server).
        self.services: Services = prepare(self.settings, serving=True)
        self.app = create_app(self.services)
        self.http = Http(self.app)

    def close(self) -> None:
        self.services.close()

    def partner(self, client_id: str | None = None) -> Partner:
        client = self.services.clients.create(client_id)
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

    The app's unexpected exceptions become its 500 response, as under a real server. A
    ``Partner``'s ``Transport``; ``content`` may also be an async iterator of chunks.
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
