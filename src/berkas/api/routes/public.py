"""Unauthenticated endpoints: the JWKS that verifies tokens, liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from berkas.api.deps import ServicesDep
from berkas.core.errors import BerkasError

router = APIRouter()


@router.get("/.well-known/jwks.json", summary="Public keys that verify tokens", tags=["keys"])
async def jwks(svc: ServicesDep) -> dict[str, Any]:
    return svc.keys.jwks()


@router.get("/healthz", summary="The process is up", tags=["health"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database and storage are reachable",
    tags=["health"],
    responses={
        200: {
            "description": "Ready: every check answered.",
            "content": {
                "application/json": {
                    "example": {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
                }
            },
        },
        503: {
            "description": "Not ready: each failing check names its error code "
            "(`database_unavailable`, `storage_unavailable`, `insufficient_storage`).",
            "content": {
                "application/json": {
                    "example": {
                        "status": "unavailable",
                        "checks": {"database": "ok", "storage": "storage_unavailable"},
                    }
                }
            },
        },
    },
)
async def readyz(svc: ServicesDep) -> Response:
    checks: dict[str, str] = {}
    for name, port in svc.health.items():
        try:
            await run_in_threadpool(port.check)
            checks[name] = "ok"
        except BerkasError as exc:
            checks[name] = exc.code
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
