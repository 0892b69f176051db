"""The web UI: static files from ``web/`` (plain HTML + JS, no build step) at ``/``.

The page asks for an admin key once and keeps it in the browser's local storage; it
calls the same JSON API as any client.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from segflow.api.http import ApiError

router = APIRouter(include_in_schema=False)
TYPES: Final = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def web_dir() -> Path:
    """``$SEGFLOW_WEB_DIR``, else the repository's ``web/``."""
    env = os.environ.get("SEGFLOW_WEB_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[4] / "web"


@router.get("/")
async def index() -> Response:
    page = web_dir() / "index.html"
    if not page.is_file():
        return RedirectResponse("/docs")
    return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/ui/{name}")
async def asset(name: str) -> FileResponse:
    root = web_dir().resolve()
    path = (root / name).resolve()
    if path.parent != root or path.suffix not in TYPES or not path.is_file():
        raise ApiError(404, f"no UI file {name!r}")
    return FileResponse(path, media_type=TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
