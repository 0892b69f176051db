"""Webhooks per segment (admin key): the webhook API kept as it was, an alias over the
destinations (a webhook is a destination of type ``webhook`` subscribed to one segment,
sent one change per signed POST, marking held-out members rather than leaving them
out).  Delivery runs in the destinations' worker; bodies are signed (see
``segflow.service.delivery``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from segflow.api.deps import Ctx, admin_key, admin_only
from segflow.api.http import ApiError
from segflow.api.routes.destinations import check_url, create, own_addresses, store, wake
from segflow.api.schemas import (
    DeliveryList,
    ErrorResponse,
    ReplayResult,
    WebhookIn,
    WebhookList,
    WebhookOut,
)
from segflow.store.records.destinations import MARK, Delivery, Destination

router = APIRouter(
    prefix="/v1/webhooks",
    tags=["webhooks"],
    dependencies=[Depends(admin_key)],
    responses={s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 422)},
)
KIND = "webhook"


def webhook_json(dest: Destination, *, with_secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": dest.id,
        "segment_id": dest.segments[0],
        "url": dest.config["url"],
        "events": list(dest.events),
        "created_at": dest.to_dict()["created_at"],
    }
    if with_secret:
        out["secret"] = dest.config["secret"]
    return out


def delivery_json(d: Delivery) -> dict[str, Any]:
    out = d.to_dict()
    out["webhook_id"] = out.pop("destination_id")
    out.pop("idempotency_key")
    return out


@router.post("", status_code=201, response_model=WebhookOut)
async def create_webhook(body: WebhookIn, ctx: Ctx, request: Request) -> dict[str, Any]:
    """Add a destination for a segment's entered/exited changes; the response holds the
    signing secret (shown once).  URLs at metadata / link-local addresses or at this
    server answer 422 (see ``Settings.allow_internal_webhook_targets``)."""
    own = own_addresses(request)

    def run() -> dict[str, Any]:
        if ctx.app.registry.get(body.segment_id) is None:
            raise ApiError(
                404,
                f"unknown segment {body.segment_id!r}",
                [{"path": "segment_id", "message": "no such segment"}],
            )
        check_url(ctx, body.url, own, "body.url")
        dest = Destination(
            id="",
            name="",
            kind=KIND,
            segments=(body.segment_id,),
            config={"url": body.url, **({"secret": body.secret} if body.secret else {})},
            events=tuple(e for e in ("entered", "exited") if e in body.events),
            batch_size=1,
            held_out=MARK,
        )
        return webhook_json(create(ctx, dest, prefix="wh_"), with_secret=True)

    out = await ctx.run(run)
    wake(ctx)
    return out


@router.get("", response_model=WebhookList)
async def list_webhooks(ctx: Ctx, segment_id: str | None = None) -> dict[str, Any]:
    hooks = await ctx.run(lambda: store(ctx).destinations(KIND, segment_id))
    return {"webhooks": [webhook_json(h) for h in hooks]}


@router.get("/deliveries", response_model=DeliveryList)
async def list_deliveries(
    ctx: Ctx,
    status: Literal["pending", "delivered", "dead"] | None = None,
    webhook_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Deliveries (``status=dead`` is the dead-letter list)."""
    rows = await ctx.run(
        lambda: store(ctx).deliveries(
            status=status, destination_id=webhook_id, kind=KIND, limit=limit
        )
    )
    return {"deliveries": [delivery_json(d) for d in rows]}


@router.post("/deliveries/replay", response_model=ReplayResult)
async def replay_deliveries(
    ctx: Ctx,
    ids: Annotated[
        list[int] | None,
        Body(embed=True, description="dead delivery ids to replay (default: all dead ones)"),
    ] = None,
) -> dict[str, Any]:
    """Move dead-lettered deliveries back to pending; they are attempted again now."""
    n = await ctx.run(lambda: store(ctx).replay(ids, ctx.clock.now(), kind=KIND))
    wake(ctx)
    return {"replayed": n}


def _hook(ctx: Any, webhook_id: str) -> Destination:
    try:
        dest = store(ctx).get(webhook_id)
    except KeyError:
        raise ApiError(404, f"unknown webhook {webhook_id!r}") from None
    if dest.kind != KIND:
        raise ApiError(404, f"unknown webhook {webhook_id!r}")
    return dest


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: str, ctx: Ctx) -> dict[str, Any]:
    return webhook_json(await ctx.run(_hook, ctx, webhook_id))


@router.delete("/{webhook_id}", status_code=204, response_class=Response)
async def delete_webhook(webhook_id: str, ctx: Ctx) -> Response:
    def run() -> None:
        _hook(ctx, webhook_id)
        store(ctx).delete(webhook_id)

    await ctx.run(run)
    return Response(status_code=204)


admin_only(router)
