"""Profiles API (admin key): the customer view, the fast segments look-up for on-site
personalisation, privacy export and erasure.

``GET /v1/profiles/{id}/segments`` must stay fast while ingestion holds the store lock,
so it reads a copy-on-write index kept current by the live evaluator's change
subscription: a look-up takes no lock and runs no SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import ORJSONResponse

from segflow.api.deps import Ctx, ServerContext, admin_key, admin_only, parse_at
from segflow.api.http import ApiError
from segflow.api.routes import destinations
from segflow.api.schemas import (
    DeleteResult,
    ErrorResponse,
    ProfileList,
    ProfileSegments,
    ProfileView,
    Timeline,
)
from segflow.model.time import format_instant
from segflow.service import profiles
from segflow.service.destinations import consent_channels
from segflow.service.onsite import VisitorIndex

router = APIRouter(
    prefix="/v1/profiles",
    tags=["profiles"],
    dependencies=[Depends(admin_key)],
    responses={s: {"model": ErrorResponse} for s in (400, 401, 403, 404)},
)


IndexUpdate = tuple[str, str | None, datetime | None]
"""(profile, segment, since): entered at since; exited (since None); or, with segment
None, the profile dropped from the index (erased)."""


class SegmentIndex:
    """profile id -> {segment: since}; each profile's dict is replaced, never mutated, so
    readers in any thread see a whole one without a lock."""

    def __init__(self) -> None:
        self._by_profile: dict[str, dict[str, datetime]] = {}
        self.ready = False
        self.listeners: list[Callable[[list[IndexUpdate]], None]] = []
        """Called with each batch of updates, in the thread that made it (the edge
        link forwards them to the edge process)."""

    def seed(self, ctx: ServerContext) -> None:
        """Fill from the live evaluator and subscribe to its changes (under ctx.lock)."""
        live = ctx.live
        if live is None:
            return
        for pid in ctx.app.store.profile_ids():
            self._by_profile[pid] = dict(live.segments_of(pid))
        live.subscribe(self.apply)
        self.ready = True

    def apply(self, changes: Sequence[Any]) -> None:
        touched: dict[str, dict[str, datetime]] = {}
        for c in changes:
            cur = touched.get(c.profile_id)
            if cur is None:
                cur = dict(self._by_profile.get(c.profile_id, {}))
                touched[c.profile_id] = cur
            if c.entered:
                cur[c.segment_id] = c.at
            else:
                cur.pop(c.segment_id, None)
        self._by_profile.update(touched)
        if self.listeners:
            updates = [(c.profile_id, c.segment_id, c.at if c.entered else None) for c in changes]
            for fn in self.listeners:
                fn(updates)

    def get(self, profile_id: str) -> dict[str, datetime] | None:
        return self._by_profile.get(profile_id)

    def drop(self, profile_id: str) -> None:
        self._by_profile.pop(profile_id, None)
        for fn in self.listeners:
            fn([(profile_id, None, None)])

    def snapshot(self) -> list[tuple[str, dict[str, datetime]]]:
        """Every profile's segments (one C call: atomic under the GIL)."""
        return list(self._by_profile.items())


def segment_index(ctx: ServerContext) -> SegmentIndex:
    return ctx.part("segment_index", SegmentIndex)


def visitor_index(ctx: ServerContext) -> VisitorIndex:
    """The on-site read's anonymous id -> profile index (``routes.onsite`` fills it)."""
    return ctx.part("visitor_index", VisitorIndex)


async def background(ctx: ServerContext) -> None:
    """Load the suppression list (synchronously: this runs during startup, before the
    first request, so no suppressed event slips in) and seed the look-up index."""
    with ctx.lock:
        ctx.app.profiles.load_suppressions(ctx.suppressed)
    await ctx.run(segment_index(ctx).seed, ctx)
    await asyncio.Event().wait()


def _resolved(ctx: ServerContext, profile_id: str) -> str:
    pid = profiles.resolve(ctx.app, profile_id)
    if pid is None:
        raise ApiError(404, f"unknown profile {profile_id!r}")
    return pid


@router.get("/{profile_id}/segments", response_model=ProfileSegments)
async def profile_segments(profile_id: str, ctx: Ctx) -> ORJSONResponse:
    """Segments the profile is in now, with since-when (in memory; for personalisation)."""
    idx = segment_index(ctx)
    found = idx.get(profile_id) if idx.ready else None
    if found is None:

        def slow() -> dict[str, str | None]:
            pid = profiles.resolve(ctx.app, profile_id)
            if pid is None:
                return {}
            return profiles.segments_of(ctx.app, ctx.live, pid)

        segs: dict[str, str | None] = await ctx.run(slow)
    else:
        segs = {s: format_instant(t) for s, t in sorted(found.items())}
    return ORJSONResponse({"profile_id": profile_id, "segments": segs})


@router.get("/{profile_id}", response_model=ProfileView)
async def get_profile(profile_id: str, ctx: Ctx, at: str | None = None) -> dict[str, Any]:
    """The customer view: identities, traits, computed traits (LTV, AOV, orders, ...),
    orders, cart, wishlist, recent click-stream, segments with since-when."""
    when = parse_at(at)

    def run() -> dict[str, Any]:
        pid = _resolved(ctx, profile_id)
        view = profiles.profile_view(ctx.app, ctx.live, pid, when or ctx.clock.now())
        view["consent_channels"] = consent_channels(destinations.store(ctx), pid)
        return view

    return await ctx.run(run)


@router.get("/{profile_id}/events", response_model=Timeline)
async def profile_events(
    profile_id: str,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        str | None,
        Query(
            max_length=200,
            description="next_before of the previous page, or an ISO 8601 instant",
        ),
    ] = None,
    type: Annotated[
        list[Literal["track", "page", "screen", "identify", "alias", "group"]] | None,
        Query(description="only these message types (repeat the parameter)"),
    ] = None,
    event: Annotated[
        list[str] | None, Query(description="only these event names (repeat the parameter)")
    ] = None,
) -> Any:
    """The profile's click-stream, newest first, a page at a time."""

    def run() -> dict[str, Any]:
        pid = _resolved(ctx, profile_id)
        try:
            return profiles.timeline(
                ctx.app, pid, limit=limit, before=before, types=type or (), names=event or ()
            )
        except ValueError as e:
            raise ApiError(
                422, f"invalid request: before: {e}", [{"path": "before", "message": str(e)}]
            ) from None

    return await ctx.run(run)


@router.get("", response_model=ProfileList)
async def list_profiles(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    after: Annotated[str | None, Query(description="cursor: the last profile id read")] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="only profiles whose id, user or anonymous id, name or email "
            "contains this (case-insensitive)",
        ),
    ] = None,
) -> Any:
    """Profiles in id order with name, email and last seen, a page at a time; ``q``
    searches them."""
    query = q.strip() if q else None
    return await ctx.run(profiles.list_profiles, ctx.app, limit=limit, after=after, q=query)


@router.get("/{profile_id}/export")
async def export_profile(profile_id: str, ctx: Ctx) -> ORJSONResponse:
    """Everything held on the profile (privacy access request), as one JSON document."""

    def run() -> dict[str, Any]:
        return profiles.privacy_export(ctx.app, ctx.live, _resolved(ctx, profile_id))

    body = await ctx.run(run)
    return ORJSONResponse(
        body,
        headers={"Content-Disposition": f'attachment; filename="profile-{profile_id}.json"'},
    )


@router.delete("/{profile_id}", response_model=DeleteResult)
async def delete_profile(
    profile_id: str,
    ctx: Ctx,
    suppress: Annotated[
        bool, Query(description="drop later events for this profile's ids at ingestion")
    ] = False,
) -> dict[str, Any]:
    """Erase the profile and every profile merged into it: events, traits, identities,
    memberships, merges and destination deliveries (exits are logged and sent to every
    destination, which forgets the profile too; the change log keeps only the returned
    pseudonym), then scrub the store file; with ``suppress=true`` keyed hashes of their
    ids go on the suppression list."""

    def run() -> dict[str, Any]:
        pid = _resolved(ctx, profile_id)
        worker = destinations.worker(ctx)
        exits, alias = profiles.erase(
            ctx.app,
            ctx.live,
            pid,
            suppress=suppress,
            suppressions=ctx.suppressed,
            enqueue=worker.catch_up if worker is not None else None,
        )
        segment_index(ctx).drop(pid)
        visitor_index(ctx).forget(pid)
        return {"deleted": pid, "exits": exits, "suppressed": suppress, "pseudonym": alias}

    body = await ctx.run(run)
    destinations.wake(ctx)
    return body


admin_only(router)
