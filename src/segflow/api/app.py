"""The FastAPI application: routers, error shapes and the server's background tasks
(group-commit writer, real-time timers, scheduled segments, per-module tasks)."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from types import ModuleType
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from segflow.api.deps import ServerContext
from segflow.api.http import INTERNAL_ERROR, ApiError, problem
from segflow.model.errors import DefinitionError
from segflow.model.events import IngestError
from segflow.process import tune_gc

log = logging.getLogger("segflow.server")

MODULES: Final = (
    "segflow.api.routes.ingest",
    "segflow.api.routes.segments",
    "segflow.api.routes.groups",
    "segflow.api.routes.profiles",
    "segflow.api.routes.onsite",
    "segflow.api.routes.changes",
    "segflow.api.routes.tokens",
    "segflow.api.routes.destinations",
    "segflow.api.routes.webhooks",
    "segflow.api.routes.keys",
    "segflow.api.routes.scores",
    "segflow.api.routes.analytics",
    "segflow.api.routes.overview",
    "segflow.api.routes.ui",
    "segflow.api.routes.docs",
    "segflow.api.edgelink",
)


def _modules() -> list[ModuleType]:
    """The API modules present (a module not written yet is skipped, a broken one raises)."""
    found = []
    for name in MODULES:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return found


def create_app(ctx: ServerContext) -> FastAPI:
    """The app serving ``ctx``; background tasks run while it is up (uvicorn lifespan)."""
    if ctx.ingestor is None:
        ctx.ingestor = ctx.writer()
    modules = _modules()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if ctx.live is not None and not ctx.extra.get("live_started"):
            await ctx.run(ctx.live.start)
            ctx.extra["live_started"] = True
        await ctx.run(ctx.app.store.message_index)  # before the first group commit needs it
        await ctx.run(ctx.app.store.defer_checkpoints, ctx.settings.checkpoint_wal_bytes)
        tune_gc()
        assert ctx.ingestor is not None
        tasks = [
            asyncio.create_task(ctx.ingestor.run(), name="ingest-writer"),
            asyncio.create_task(_timers(ctx), name="live-timers"),
            asyncio.create_task(_scheduler(ctx), name="scheduler"),
        ]
        for m in modules:
            background: Callable[[ServerContext], Awaitable[None]] | None = getattr(
                m, "background", None
            )
            if background is not None:
                tasks.append(asyncio.create_task(_guard(background, ctx), name=m.__name__))
        try:
            yield
        finally:
            stop_edge = ctx.extra.get("stop_edge")
            if stop_edge is not None:  # first: its requests in flight are still answered
                await asyncio.to_thread(stop_edge)
            ctx.ingestor.close()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await t

    app = FastAPI(
        title="segflow",
        summary="Real-time customer segmentation: Segment-compatible ingestion, "
        "segments, profiles and membership changes.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from the package by api/routes/docs.py (no CDN)
        redoc_url=None,
    )
    app.state.ctx = ctx

    @app.get("/healthz", tags=["server"])
    async def healthz() -> dict[str, Any]:
        """Liveness (no key needed): answers once the server is up."""
        return {"ok": True, "live": ctx.live is not None}

    for m in modules:
        router = getattr(m, "router", None)
        if router is not None:
            app.include_router(router)
    for router in ctx.extra.get("routers", ()):  # more routes, given by the embedding code
        app.include_router(router)
    _install_errors(app)
    app.add_middleware(Unexpected)
    _security_schemes(app)
    return app


async def _guard(fn: Callable[[ServerContext], Awaitable[None]], ctx: ServerContext) -> None:
    try:
        await fn(ctx)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task %s stopped", getattr(fn, "__module__", fn))


async def _timers(ctx: ServerContext) -> None:
    """Fire the live evaluator's timers: sleep until its next deadline, then tick."""
    live = ctx.live
    if live is None:
        return
    while True:
        deadline: datetime | None = await ctx.run(live.next_deadline)
        wait = ctx.settings.timer_max_sleep_seconds
        if deadline is not None:
            wait = min(wait, max(0.0, (deadline - ctx.clock.now()).total_seconds()))
        await asyncio.sleep(wait)
        try:
            await ctx.run(live.tick)
        except Exception:
            log.exception("live timers failed")


async def _scheduler(ctx: ServerContext) -> None:
    """Re-evaluate scheduled segments when their cron schedule is due, then refresh the
    value scores when ``settings.scores_cron`` is due."""
    while True:
        try:
            await ctx.run(ctx.app.run_schedule, ctx.clock.now())
        except Exception:
            log.exception("scheduled evaluation failed")
        try:
            await ctx.run(_scheduled_scores, ctx, ctx.clock.now())
        except Exception:
            log.exception("scheduled scores refresh failed")
        await asyncio.sleep(ctx.settings.schedule_interval_seconds)


def _scheduled_scores(ctx: ServerContext, now: datetime) -> None:
    """Refresh the scores as of ``now`` if the cron is due (under the store lock), then
    let the live evaluator catch up; an empty store (nothing to score yet) waits for its
    first events."""
    from segflow.api.routes.scores import refresh_live
    from segflow.service.scores import scores_due

    cron = ctx.settings.scores_cron
    if cron is None or not scores_due(ctx.app, now, cron) or ctx.app.store.count_events() == 0:
        return
    report = refresh_live(ctx, now)
    log.info(
        "scores refreshed as of %s: %d profiles, %d customers, %.1f s",
        now.isoformat(), report.profiles, report.customers, report.seconds.get("total", 0.0),
    )  # fmt: skip


def _install_errors(app: FastAPI) -> None:
    """Every error in the shared shape ``{"error": {status, message, errors}}``."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return problem(exc.status, exc.message, exc.errors, exc.headers)

    async def definition_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DefinitionError)
        errors = [{"path": p.path, "message": p.message} for p in exc.problems]
        head = f"{errors[0]['path']}: {errors[0]['message']}" if errors else str(exc)
        return problem(422, f"invalid segment definition: {head}", errors)

    async def ingest_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, IngestError)
        errors = [{"path": p.field, "message": p.message} for p in exc.problems]
        return problem(400, f"invalid message: {exc.problems[0] if exc.problems else exc}", errors)

    async def key_error(_: Request, exc: Exception) -> JSONResponse:
        message = str(exc.args[0]) if exc.args else "not found"
        return problem(404, message)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"path": ".".join(str(x) for x in e.get("loc", ())), "message": str(e.get("msg"))}
            for e in exc.errors()
        ]
        head = f"{errors[0]['path']}: {errors[0]['message']}" if errors else "invalid request"
        return problem(422, f"invalid request: {head}", errors)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, str(exc.detail), None, headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(DefinitionError, definition_error)
    app.add_exception_handler(IngestError, ingest_error)
    app.add_exception_handler(KeyError, key_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


class Unexpected:
    """ASGI middleware: an unhandled exception becomes a 500 in the shared JSON error
    shape, and the connection stays open.  (Left to Starlette, the answer would be plain
    text and uvicorn would close the connection, which the edge's pool could reuse
    before it noticed.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if started:  # part of an answer is out: only closing can end it
                raise
            log.exception("%s %s failed", scope["method"], scope["path"])
            await problem(500, INTERNAL_ERROR)(scope, receive, send)


def _security_schemes(app: FastAPI) -> None:
    """Declare the key kinds in the OpenAPI document."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        comps = schema.setdefault("components", {})
        comps.setdefault("securitySchemes", {}).update(
            {
                "writeKey": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Write key as the basic-auth user name (Segment style).",
                },
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Admin key: Authorization: Bearer <key>.",
                },
                "publishableKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Segflow-Key",
                    "description": "Publishable key (safe in a web page): only "
                    "GET /v1/onsite/segments.",
                },
                "publishableKeyParam": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "key",
                    "description": "The publishable key as a query parameter instead.",
                },
                "streamToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "api_key",
                    "description": "A 5-minute token from POST /v1/stream-tokens: opens "
                    "the change stream only (for EventSource, which cannot send headers).",
                },
            }
        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
