"""Destinations (admin key): webhooks, Redis streams, NATS JetStream subjects and file
drops subscribed to segments; their deliveries, dead-letter list, replay and full syncs.
Delivery runs in ``segflow.service.destinations.DestinationWorker``, started here for
the server's lifetime (the webhook routes are an alias over the same store).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response

from segflow.api.deps import Ctx, ServerContext, Settings, admin_key, admin_only
from segflow.api.http import ApiError
from segflow.api.routes.changes import segment_holdouts, silent_segments
from segflow.api.schemas import (
    DestinationDeliveryList,
    DestinationList,
    DestinationOut,
    DestinationTypes,
    ErrorResponse,
    ReplayResult,
    SyncList,
    SyncOut,
)
from segflow.service.delivery import DeliverySettings, TargetRefused, check_target
from segflow.service.destinations import (
    DestinationWorker,
    InvalidDestination,
    add,
    destination_report,
    destination_types,
    parse_destination,
    replace_config,
    resolved_members,
    with_kept_key,
)
from segflow.service.segments import last_change_seq
from segflow.store.duckdb.destinations import DestinationStore
from segflow.store.records.destinations import Destination

router = APIRouter(
    prefix="/v1/destinations",
    tags=["destinations"],
    dependencies=[Depends(admin_key)],
    responses={s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 422)},
)


def store(ctx: ServerContext) -> DestinationStore:
    s = ctx.extra.get("destination_store")
    if not isinstance(s, DestinationStore):
        with ctx.lock:
            s = ctx.extra.get("destination_store")
            if not isinstance(s, DestinationStore):
                s = ctx.app.destination_store(
                    lambda: silent_segments(ctx),
                    lambda: segment_holdouts(ctx),
                    lambda pid: bool(ctx.suppressed) and pid in ctx.suppressed,
                    ctx.settings.unknown_consent,
                )
                ctx.extra["destination_store"] = s
    return s


def delivery_settings(settings: Settings | None = None) -> DeliverySettings:
    """Defaults, overridable by SEGFLOW_WEBHOOK_BACKOFF_S / _MAX_ATTEMPTS / _TIMEOUT_S
    (they tune every destination); which URLs are allowed comes from the settings."""
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


def segment_members(ctx: ServerContext, segment_id: str) -> list[str]:
    """A segment's members now: the live evaluator's, else the batch evaluator's."""
    if ctx.live is not None:
        return ctx.live.members(segment_id)
    return ctx.app.members(segment_id)


async def background(ctx: ServerContext) -> None:
    """Run the delivery worker; it resumes pending deliveries and syncs left by a
    previous run.  The store is opened in a worker thread: taking the store lock on the
    event loop would stall every request while a writer holds it."""
    ds = await ctx.run(store, ctx)

    def changes_after(seq: int) -> list[Any]:
        return list(ctx.app.changes.query(after_seq=seq, limit=5000))

    worker = DestinationWorker(
        ds,
        ctx.lock,
        changes_after,
        delivery_settings(ctx.settings),
        members=lambda sid: segment_members(ctx, sid),
        group_members=lambda gid: resolved_members(ctx.app, gid),
    )
    ctx.extra["destination_worker"] = worker
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


def worker(ctx: ServerContext) -> DestinationWorker | None:
    """The server's delivery worker (None before it starts)."""
    w = ctx.extra.get("destination_worker")
    return w if isinstance(w, DestinationWorker) else None


def wake(ctx: ServerContext) -> None:
    w = worker(ctx)
    if w is not None:
        w.wake()


def own_addresses(request: Request) -> list[tuple[str, int]]:
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


def check_url(ctx: ServerContext, url: str, own: list[tuple[str, int]], path: str) -> None:
    """422 for a webhook URL at a metadata / link-local address or at this server."""
    try:
        check_target(
            url,
            allow_internal=ctx.settings.allow_internal_webhook_targets,
            allow_private=ctx.settings.allow_private_webhook_targets,
            own=own,
            resolve=False,
        )
    except TargetRefused as e:
        problems = [{"path": path, "message": str(e)}]
        raise ApiError(422, f"webhook url refused: {e}", problems) from None


def create(ctx: ServerContext, dest: Destination, *, prefix: str = "dst_") -> Destination:
    """Store a checked destination; it receives the changes logged from now on."""
    return add(store(ctx), dest, last_change_seq(ctx.app), prefix=prefix)


def _get(ctx: ServerContext, destination_id: str) -> Destination:
    try:
        return store(ctx).get(destination_id)
    except KeyError:
        raise ApiError(404, f"unknown destination {destination_id!r}") from None


@router.post("", status_code=201, response_model=DestinationOut)
async def create_destination(
    ctx: Ctx,
    request: Request,
    body: Annotated[dict[str, Any], Body(description="the destination's configuration")],
) -> dict[str, Any]:
    """Add a destination (see docs/activation.md for each type's settings); a webhook's
    signing secret is in this answer only.  Every problem answers 422 with its path."""
    own = own_addresses(request)

    def run() -> dict[str, Any]:
        made = create(ctx, _parsed(ctx, body, own))
        return made.to_dict(with_secret=True)

    out = await ctx.run(run)
    wake(ctx)
    return out


def _parsed(ctx: ServerContext, body: Mapping[str, Any], own: list[tuple[str, int]]) -> Destination:
    try:
        dest = parse_destination(
            body, list(ctx.app.registry.current()), list(ctx.app.registry.groups())
        )
    except InvalidDestination as e:
        raise ApiError(
            422,
            f"invalid destination: {e}",
            [{"path": f"body.{p.path}" if p.path else "body", "message": p.message}
             for p in e.problems],
        ) from None  # fmt: skip
    if dest.kind == "webhook":
        check_url(ctx, str(dest.config["url"]), own, "body.config.url")
    return dest


@router.put("/{destination_id}", response_model=DestinationOut)
async def update_destination(
    destination_id: str,
    ctx: Ctx,
    request: Request,
    body: Annotated[dict[str, Any], Body(description="the destination's new configuration")],
) -> dict[str, Any]:
    """Replace its configuration (same body as creating one; a webhook sent without a
    secret keeps its own, an esp sent without an API key its own); deliveries already
    queued are sent as they were made."""
    own = own_addresses(request)

    def run() -> dict[str, Any]:
        dest = _parsed(ctx, with_kept_key(_get(ctx, destination_id), body), own)
        return destination_report(store(ctx), replace_config(store(ctx), destination_id, dest))

    out = await ctx.run(run)
    wake(ctx)
    return out


@router.get("", response_model=DestinationList)
async def list_destinations(
    ctx: Ctx, segment_id: str | None = None, type: str | None = None
) -> dict[str, Any]:
    def run() -> list[dict[str, Any]]:
        ds = store(ctx)
        found = ds.destinations(kind=type, segment_id=segment_id)
        return [destination_report(ds, d) for d in found]

    return {"destinations": await ctx.run(run)}


@router.get("/types", response_model=DestinationTypes)
async def list_destination_types() -> dict[str, Any]:
    """Each destination type's settings (name, whether required, the input it takes,
    its choices and default), the consent channels and policies: what a form needs."""
    return destination_types()


@router.get("/{destination_id}", response_model=DestinationOut)
async def get_destination(destination_id: str, ctx: Ctx) -> dict[str, Any]:
    """One destination, its delivery counts per status and its latest syncs."""
    return await ctx.run(lambda: destination_report(store(ctx), _get(ctx, destination_id)))


@router.delete("/{destination_id}", status_code=204, response_class=Response)
async def delete_destination(destination_id: str, ctx: Ctx) -> Response:
    """Remove it; its pending deliveries go to the dead-letter list."""

    def run() -> None:
        _get(ctx, destination_id)
        store(ctx).delete(destination_id)

    await ctx.run(run)
    return Response(status_code=204)


@router.get("/{destination_id}/deliveries", response_model=DestinationDeliveryList)
async def list_destination_deliveries(
    destination_id: str,
    ctx: Ctx,
    status: Literal["pending", "delivered", "dead"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Its change deliveries (``status=dead``: the dead-letter list) and counts."""

    def run() -> dict[str, Any]:
        _get(ctx, destination_id)
        ds = store(ctx)
        rows = ds.deliveries(status=status, destination_id=destination_id, limit=limit)
        return {"counts": ds.counts(destination_id), "deliveries": [d.to_dict() for d in rows]}

    return await ctx.run(run)


@router.post("/{destination_id}/replay", response_model=ReplayResult)
async def replay_destination(
    destination_id: str,
    ctx: Ctx,
    ids: Annotated[
        list[int] | None,
        Body(embed=True, description="dead delivery ids to replay (default: all dead ones)"),
    ] = None,
) -> dict[str, Any]:
    """Move its dead-lettered deliveries back to pending; they are sent again now."""

    def run() -> int:
        _get(ctx, destination_id)
        return store(ctx).replay(ids, ctx.clock.now(), destination_id=destination_id)

    n = await ctx.run(run)
    wake(ctx)
    return {"replayed": n}


@router.post("/{destination_id}/sync", status_code=202, response_model=SyncOut)
async def sync_destination(destination_id: str, ctx: Ctx) -> dict[str, Any]:
    """Request a full sync of its segments' members (held-out ones left out); it runs
    on the destination's own worker: follow it at ``/syncs``."""

    def run() -> dict[str, Any]:
        _get(ctx, destination_id)
        return store(ctx).request_sync(destination_id, "manual", ctx.clock.now()).to_dict()

    out = await ctx.run(run)
    wake(ctx)
    return out


@router.get("/{destination_id}/syncs", response_model=SyncList)
async def list_syncs(
    destination_id: str, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> dict[str, Any]:
    """Its syncs, newest first, with their counts (the delivery log of full syncs)."""

    def run() -> list[dict[str, Any]]:
        _get(ctx, destination_id)
        return [s.to_dict() for s in store(ctx).syncs(destination_id, limit=limit)]

    return {"syncs": await ctx.run(run)}


admin_only(router)
