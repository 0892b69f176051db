"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with
their scripts and styles served from the package (``api/static/``), so they work on a
network with no way out and load nothing from a third party.

The assets are the upstream distributions, unchanged: ``swagger-ui-dist`` and
``redoc``'s standalone bundle (their licences sit beside them; the versions are in
``api/static/VERSIONS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from segflow.api.http import ApiError

router = APIRouter(include_in_schema=False)
STATIC: Final = Path(__file__).resolve().parents[1] / "static"
PREFIX: Final = "/static/docs"
ASSETS: Final = {
    "swagger-ui-bundle.js": ("swagger-ui", "text/javascript"),
    "swagger-ui.css": ("swagger-ui", "text/css"),
    "favicon-32x32.png": ("swagger-ui", "image/png"),
    "redoc.standalone.js": ("redoc", "text/javascript"),
}
"""The files the pages load: name -> (folder under ``api/static``, media type)."""
TITLE: Final = "segflow API"


def asset_path(name: str) -> Path:
    folder, _ = ASSETS[name]
    return STATIC / folder / name


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    """Swagger UI over /openapi.json; the admin key entered under "Authorize" is kept
    in the browser's storage so it survives a reload."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} - Swagger UI",
        swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{PREFIX}/favicon-32x32.png",
        oauth2_redirect_url=None,
        swagger_ui_parameters={"persistAuthorization": True},
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    """ReDoc over /openapi.json (no web fonts: the page uses the system's)."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{TITLE} - ReDoc",
        redoc_js_url=f"{PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{PREFIX}/favicon-32x32.png",
        with_google_fonts=False,
    )


@router.get(PREFIX + "/{name}")
async def docs_asset(name: str) -> FileResponse:
    """One vendored asset; they change only with the package, so clients may keep them
    for a day."""
    if name not in ASSETS:
        raise ApiError(404, f"no documentation asset {name!r}")
    return FileResponse(
        asset_path(name),
        media_type=ASSETS[name][1],
        headers={"Cache-Control": "public, max-age=86400"},
    )
