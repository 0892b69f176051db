"""The two hot paths, answered before FastAPI's routing.

Under load the event loop spends most of its time on two requests: Segment ingestion
(``POST /v1/track|identify|page|screen|alias|group|batch``) and the segments look-up
for on-site personalisation (``GET /v1/profiles/{id}/segments``).  Through FastAPI
each one walks four middlewares, matches the path against every route in turn and
solves dependencies: about as much Python as the handler itself, on the thread that
also has to answer the next look-up.  ``FastLane`` sends exactly these requests to
the same handler functions directly (same auth, same errors, same bodies) and
everything else, including the OpenAPI description of these paths, to the app.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from segflow.api.deps import get_ctx, require_admin
from segflow.api.http import INGEST, INTERNAL_ERROR, ApiError, lookup_id, problem
from segflow.api.routes import ingest, profiles

log = logging.getLogger("segflow.server")


class FastLane:
    """ASGI app: ingestion and the segments look-up straight to their handlers, the
    rest to the FastAPI ``app``."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            path: str = scope["path"]
            if method == "POST":
                kind = INGEST.get(path)
                if kind is not None:
                    await self._serve(scope, receive, send, kind, None)
                    return
            elif method == "GET":
                pid = lookup_id(path)
                if pid is not None:
                    await self._serve(scope, receive, send, None, pid)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, kind: str | None, pid: str | None
    ) -> None:
        scope["app"] = self.app  # what Starlette sets: handlers find the context there
        request = Request(scope, receive, send)
        response: Response
        try:
            if kind is not None:
                response = await ingest.ingest_request(request, kind)
            else:
                assert pid is not None
                require_admin(request)
                response = await profiles.profile_segments(pid, get_ctx(request))
        except ApiError as e:
            response = problem(e.status, e.message, e.errors, e.headers)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            response = problem(500, INTERNAL_ERROR)
        await response(scope, receive, send)


__all__ = ["FastLane"]
