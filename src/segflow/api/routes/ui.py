"""The web UI: static files from ``web/`` (ES modules and vendored libraries, no build
step and no Node at run time) at ``/`` and ``/ui/...``.

The page asks for an admin key once and keeps it in the browser's local storage; it
calls the same JSON API as any client, with the key in the ``Authorization`` header
only (never in a URL). A Content-Security-Policy keeps every script and request on the
server's own origin: the UI loads nothing from a CDN.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from segflow.api.http import ApiError

router = APIRouter(include_in_schema=False)
TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# Scripts and styles from this origin only; uPlot and Preact set element styles through
# the CSSOM, which 'self' allows. Data URLs for the inline SVG favicon.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def web_dir() -> Path:
    """``$SEGFLOW_WEB_DIR``, else the copy inside the installed package (the wheel
    carries ``web/`` as ``segflow/web``), else the repository's ``web/``."""
    env = os.environ.get("SEGFLOW_WEB_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    packaged = here.parents[2] / "web"
    return packaged if packaged.is_dir() else here.parents[4] / "web"


@router.get("/")
async def index() -> Response:
    page = web_dir() / "index.html"
    if not page.is_file():
        return RedirectResponse("/docs")
    return FileResponse(
        page, media_type="text/html", headers={"Cache-Control": "no-cache", **HEADERS}
    )


@router.get("/ui/{name:path}")
async def asset(name: str) -> FileResponse:
    """A file under ``web/`` (subfolders included, nothing outside it). Vendored
    libraries never change under one name, so browsers may keep them for a day; the
    app's own modules are revalidated on each load (ETag), so an upgrade shows at once."""
    root = web_dir().resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path.suffix not in TYPES or not path.is_file():
        raise ApiError(404, f"no UI file {name!r}")
    cache = "public, max-age=86400" if name.startswith("vendor/") else "no-cache"
    return FileResponse(
        path, media_type=TYPES[path.suffix], headers={"Cache-Control": cache, **HEADERS}
    )
