"""Webhook destinations per segment (admin key), their deliveries and the dead-letter
list with replay.  Delivery itself runs in ``segflow.service.delivery.WebhookWorker``, started
here for the server's lifetime; bodies are signed (see that module's docstring).
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from segflow.api.deps import Ctx, ServerContext, Settings, admin_key, admin_only
from segflow.api.http import ApiError
from segflow.api.routes.changes import segment_holdouts, silent_segments
from segflow.api.schemas import (
    DeliveryList,
    ErrorResponse,
    ReplayResult,
    WebhookIn,
    WebhookList,
    WebhookOut,
)
from segflow.service.delivery import DeliverySettings, TargetRefused, WebhookWorker, check_target
from segflow.service.segments import last_change_seq
from segflow.store.duckdb.outbox import WebhookStore

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    dependencies=[Depends(admin_key)],
    responses={s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 422)},
)


def store(ctx: ServerContext) -> WebhookStore:
    s = ctx.extra.get("webhook_store")
    if not isinstance(s, WebhookStore):
        with ctx.lock:
            s = ctx.app.webhook_store(lambda: silent_segments(ctx), lambda: segment_holdouts(ctx))
        ctx.extra["webhook_store"] = s
    return s


def delivery_settings(settings: Settings | None = None) -> DeliverySettings:
    """Defaults, overridable by SEGFLOW_WEBHOOK_BACKOFF_S / _MAX_ATTEMPTS / _TIMEOUT_S;
    which targets are allowed comes from the server's settings."""
    from datetime import timedelta

    settings = settings or Settings()
    d = DeliverySettings()
    return DeliverySettings(
        backoff=timedelta(
            seconds=float(os.environ.get("SEGFLOW_WEBHOOK_BACKOFF_S", d.backoff.total_seconds()))
        ),
        max_attempts=int(os.environ.get("SEGFLOW_WEBHOOK_MAX_ATTEMPTS", d.max_attempts)),
        timeout_s=float(os.environ.get("SEGFLOW_WEBHOOK_TIMEOUT_S", d.timeout_s)),
        poll_s=min(d.poll_s, float(os.environ.get("SEGFLOW_WEBHOOK_BACKOFF_S", d.poll_s))),
        allow_internal=settings.allow_internal_webhook_targets,
        allow_private=settings.allow_private_webhook_targets,
    )


async def background(ctx: ServerContext) -> None:
    """Run the delivery worker; it resumes pending deliveries left by a previous run."""
    ws = store(ctx)

    def changes_after(seq: int) -> list[Any]:
        return list(ctx.app.changes.query(after_seq=seq, limit=5000))

    worker = WebhookWorker(ws, ctx.lock, changes_after, delivery_settings(ctx.settings))
    ctx.extra["webhook_worker"] = worker
    unsubscribe = None
    if ctx.live is not None:
        unsubscribe = await ctx.run(ctx.live.subscribe, lambda _c: worker.wake())
    worker.start()
    try:
        await asyncio.Event().wait()
    finally:
        if unsubscribe is not None:
            with ctx.lock:
                unsubscribe()
        await asyncio.to_thread(worker.stop)


def _wake(ctx: ServerContext) -> None:
    worker = ctx.extra.get("webhook_worker")
    if isinstance(worker, WebhookWorker):
        worker.wake()


def _own_addresses(request: Request) -> list[tuple[str, int]]:
    """Where this server is reached: the Host the request named and the socket it came
    in on (a webhook there would post to the server itself)."""
    own: list[tuple[str, int]] = []
    if request.url.hostname:
        default = 443 if request.url.scheme == "https" else 80
        own.append((request.url.hostname, request.url.port or default))
    server = request.scope.get("server")
    if server and server[1] is not None:
        own.append((str(server[0]), int(server[1])))
    return own


@router.post("", status_code=201, response_model=WebhookOut)
async def create_webhook(body: WebhookIn, ctx: Ctx, request: Request) -> dict[str, Any]:
    """Add a destination for a segment's entered/exited changes; the response holds the
    signing secret (shown once).  URLs at metadata / link-local addresses or at this
    server answer 422 (see ``Settings.allow_internal_webhook_targets``)."""
    own = _own_addresses(request)

    def run() -> dict[str, Any]:
        if ctx.app.registry.get(body.segment_id) is None:
            raise ApiError(
                404,
                f"unknown segment {body.segment_id!r}",
                [{"path": "segment_id", "message": "no such segment"}],
            )
        try:
            check_target(
                body.url,
                allow_internal=ctx.settings.allow_internal_webhook_targets,
                allow_private=ctx.settings.allow_private_webhook_targets,
                own=own,
                resolve=False,
            )
        except TargetRefused as e:
            raise ApiError(
                422, f"webhook url refused: {e}", [{"path": "body.url", "message": str(e)}]
            ) from None
        hook = store(ctx).create(
            body.segment_id,
            body.url,
            body.events,
            body.secret,
            from_seq=last_change_seq(ctx.app),
        )
        return hook.to_dict(with_secret=True)

    return await ctx.run(run)


@router.get("", response_model=WebhookList)
async def list_webhooks(ctx: Ctx, segment_id: str | None = None) -> dict[str, Any]:
    hooks = await ctx.run(store(ctx).hooks, segment_id)
    return {"webhooks": [h.to_dict() for h in hooks]}


@router.get("/deliveries", response_model=DeliveryList)
async def list_deliveries(
    ctx: Ctx,
    status: Literal["pending", "delivered", "dead"] | None = None,
    webhook_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Deliveries (``status=dead`` is the dead-letter list)."""
    rows = await ctx.run(store(ctx).deliveries, status=status, webhook_id=webhook_id, limit=limit)
    return {"deliveries": [d.to_dict() for d in rows]}


@router.post("/deliveries/replay", response_model=ReplayResult)
async def replay_deliveries(
    ctx: Ctx,
    ids: Annotated[
        list[int] | None,
        Body(embed=True, description="dead delivery ids to replay (default: all dead ones)"),
    ] = None,
) -> dict[str, Any]:
    """Move dead-lettered deliveries back to pending; they are attempted again now."""
    n = await ctx.run(store(ctx).replay, ids, ctx.clock.now())
    _wake(ctx)
    return {"replayed": n}


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: str, ctx: Ctx) -> dict[str, Any]:
    try:
        hook = await ctx.run(store(ctx).get, webhook_id)
    except KeyError:
        raise ApiError(404, f"unknown webhook {webhook_id!r}") from None
    return hook.to_dict()


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: str, ctx: Ctx) -> Response:
    try:
        await ctx.run(store(ctx).delete, webhook_id)
    except KeyError:
        raise ApiError(404, f"unknown webhook {webhook_id!r}") from None
    return Response(status_code=204)


admin_only(router)
