"""The ASGI application factory: partner routes, links, keys and health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from berkas import __version__
from berkas.api import errors, partner
from berkas.api.metrics import Metrics, MetricsMiddleware
from berkas.core.errors import BerkasError, PermissionDenied
from berkas.services.housekeeping import Housekeeping
from berkas.wiring import Container

log = logging.getLogger(__name__)

DESCRIPTION = """\
berkas speaks DOKU's Partner file API: sign a request with your HMAC secret to get an
RS256 bearer token (POST /token), ask which documents a merchant needs (GET /file), and
upload each one (POST /file). Every error is `{"error": {"code", "message", "type"}}`.
"""


async def _housekeeping(housekeeping: Housekeeping) -> None:
    """Repeat the node's chores for as long as it serves; a failed round is retried."""
    while True:
        await asyncio.sleep(housekeeping.interval.total_seconds())
        try:
            await run_in_threadpool(housekeeping.run_once)
        except Exception:
            log.exception("housekeeping failed; it runs again at the next interval")


def create_app(container: Container) -> FastAPI:
    """Build the app around an already-built container (see ``berkas.wiring.build``)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        chores = asyncio.create_task(_housekeeping(container.housekeeping))
        try:
            yield
        finally:
            chores.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chores

    app = FastAPI(
        lifespan=lifespan,
        title="berkas",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    errors.install(app)
    metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    app.include_router(partner.router(container))

    @app.get("/links/{key:path}", summary="Download through a signed link", tags=["links"])
    async def download(key: str, request: Request) -> Response:
        expires = request.query_params.get("expires")
        signature = request.query_params.get("signature")
        if expires is None or signature is None:
            raise PermissionDenied(
                "this link is incomplete; ask the API for a fresh one (GET /file/{id}).",
                code="link_invalid",
            )
        stored, chunks = await run_in_threadpool(container.files.open_link, key, expires, signature)
        extension = stored.key.rsplit(".", 1)[-1]
        return StreamingResponse(
            chunks,
            media_type=stored.content_type,
            headers={
                "Content-Length": str(stored.size),
                # The bytes are KYC documents: never cached by shared caches, never sniffed.
                "Cache-Control": "private, no-store",
                "X-Content-Type-Options": "nosniff",
                "Content-Disposition": f'inline; filename="{stored.id}.{extension}"',
            },
        )

    @app.get("/.well-known/jwks.json", summary="Public keys that verify tokens", tags=["keys"])
    async def jwks() -> dict[str, Any]:
        return container.keys.jwks()

    @app.get("/healthz", summary="The process is up", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Database and storage are reachable", tags=["health"])
    async def readyz() -> Response:
        checks: dict[str, str] = {}
        for name, check in (
            ("database", container.database.check),
            ("storage", container.blobs.check),
        ):
            try:
                await run_in_threadpool(check)
                checks[name] = "ok"
            except BerkasError as exc:
                checks[name] = exc.code
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    # HEAD too (link previewers, load balancers' health checks); kept out of the schema,
    # where it would only repeat the GET.
    for path, endpoint in (
        ("/links/{key:path}", download),
        ("/healthz", healthz),
        ("/readyz", readyz),
    ):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
    return app
