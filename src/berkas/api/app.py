"""The ASGI application factory: partner routes, links, keys and health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from berkas import __version__
from berkas.api import errors, schemas
from berkas.api.metrics import Metrics, MetricsMiddleware
from berkas.api.routes import files, public, signed, uploads
from berkas.core.errors import Unavailable
from berkas.services.bundle import Services

log = logging.getLogger(__name__)

# How often a serving node re-reads the signing keys: a `berkas keys rotate` anywhere in
# the fleet signs new tokens on every node within this, and its JWKS shows the new key.
# (An unknown kid in a token triggers a re-read sooner, rate-limited in the key ring.)
KEY_SYNC_SECONDS = 5.0

DESCRIPTION = """\
berkas speaks DOKU's Partner file API: sign a request with your HMAC secret to get an
RS256 bearer token (POST /token), ask which documents a merchant needs (GET /file), and
upload each one (POST /file). Every error is `{"error": {"code", "message", "type"}}`.
"""


async def _every(seconds: float, chore: Callable[[], object], what: str) -> None:
    """Repeat a node's chore for as long as it serves; a failed round is retried."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(chore)
        except Unavailable as exc:
            # The database or store is down: /readyz and every request already say so;
            # one line per round, no traceback (the next round retries).
            log.warning("%s skipped: %s (%s)", what, exc.message, exc.code)
        except Exception:
            log.exception("%s failed; it runs again at the next interval", what)


def create_app(services: Services) -> FastAPI:
    """Build the app around already-built services (see ``berkas.wiring.build``)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        housekeeping, nodes = services.housekeeping, services.nodes
        # Renewed once before serving: start-up chores (first keys, bucket checks, orphan
        # sweeps) may have eaten into the lease since prepare claimed it.
        await run_in_threadpool(nodes.heartbeat)
        chores = [
            asyncio.create_task(
                _every(housekeeping.interval.total_seconds(), housekeeping.run_once, "housekeeping")
            ),
            # The node-number lease (DESIGN 5), renewed well before it lapses.
            asyncio.create_task(
                _every(nodes.interval.total_seconds(), nodes.heartbeat, "node lease renewal")
            ),
            asyncio.create_task(_every(KEY_SYNC_SECONDS, services.keys.reload, "signing key sync")),
        ]
        try:
            yield
        finally:
            for chore in chores:
                chore.cancel()
            for chore in chores:
                with contextlib.suppress(asyncio.CancelledError):
                    await chore
            # A clean stop frees the number at once; a crash frees it when the lease lapses.
            with contextlib.suppress(Exception):
                await run_in_threadpool(nodes.release)

    app = FastAPI(
        lifespan=lifespan,
        title="berkas",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    errors.install(app)
    metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_route("/metrics", metrics.endpoint, include_in_schema=False)
    for module in (signed, uploads, files, public):
        app.include_router(module.router)
    # HEAD too (link previewers, load balancers' health checks); kept out of the schema,
    # where it would only repeat the GET.
    for path, endpoint in (
        ("/links/{key:path}", files.download),
        ("/healthz", public.healthz),
        ("/readyz", public.readyz),
    ):
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
    _declare_security_schemes(app)
    return app


def _declare_security_schemes(app: FastAPI) -> None:
    # The partner routes name a ``bearer`` scheme in their ``security``; FastAPI lists
    # schemes only for its own security dependencies, so the document declares it here.
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            spec.setdefault("components", {})["securitySchemes"] = schemas.SECURITY_SCHEMES
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]
