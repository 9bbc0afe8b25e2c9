"""The API documentation pages, served with no request leaving the host.

FastAPI's default /docs and /redoc pages load Swagger UI and ReDoc from a CDN (and ReDoc
its fonts from Google), so on a host without internet, where berkas often runs, they are
blank. The same assets ship in the ``fastapi-offline`` package (Swagger UI: Apache-2.0;
ReDoc: MIT; the package: MIT); berkas serves them from there.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def _asset_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI) -> None:
    """Serve /docs (Swagger UI), /redoc (ReDoc), their assets, and / → /docs."""
    openapi_url = app.openapi_url or "/openapi.json"
    app.mount(ASSETS, StaticFiles(directory=_asset_dir()), name="docs-assets")

    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    for path, endpoint in (("/docs", swagger), ("/redoc", redoc), ("/", root)):
        app.add_api_route(path, endpoint, methods=["GET"], include_in_schema=False)
