"""Membership changes out: the change log (paged) and a Server-Sent Events stream.

Each SSE event is one change: ``id`` is its ``seq``, ``event`` is ``entered`` or
``exited``, ``data`` the change as JSON.  A reconnecting client sends ``Last-Event-ID``
and resumes right after it, from the stored log, so nothing is missed (the stream
opens with an id-only block carrying its starting seq, so even a reconnect before
the first change resumes where it started).  Changes are pushed to open streams by
the live evaluator's subscription once they are stored; a stream reads the log only
to catch up (on connect, after falling more than MAX_BUFFERED behind, or after a
quiet spell), so many open streams cost no store queries while ingestion runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.routing import APIRoute
from sse_starlette import EventSourceResponse, ServerSentEvent

from segflow.api.deps import Ctx, ServerContext, admin_key, admin_only, parse_at, stream_auth
from segflow.api.http import ApiError
from segflow.api.schemas import ChangesPage, ErrorResponse
from segflow.model.changes import LoggedChange
from segflow.model.definition import Holdout
from segflow.service.segments import change_json, last_change_seq, saved_holdouts

router = APIRouter(
    prefix="/v1/changes",
    tags=["changes"],
    responses={s: {"model": ErrorResponse} for s in (400, 401, 403, 404)},
)
READ_BATCH: Final = 1000
IDLE_POLL_S: Final = 5.0
MAX_BUFFERED: Final = 10_000


class Waiter:
    """One open stream's buffer of pushed changes (touched only on its event loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.items: deque[Any] = deque()
        self.lagged = False

    def push(self, changes: list[Any]) -> None:
        """Buffer pushed changes; past MAX_BUFFERED the stream re-reads the log instead."""
        if not self.lagged:
            if len(self.items) + len(changes) > MAX_BUFFERED:
                self.items.clear()
                self.lagged = True
            else:
                self.items.extend(changes)
        self.event.set()


class ChangeHub:
    """Pushes every batch of logged changes to each open stream's buffer (each on its
    own event loop); a stream reads the stored log only to catch up."""

    def __init__(self) -> None:
        self._waiters: set[Waiter] = set()

    def register(self) -> Waiter:
        waiter = Waiter(asyncio.get_running_loop())
        self._waiters.add(waiter)
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        self._waiters.discard(waiter)

    def notify(self, changes: Sequence[Any] = ()) -> None:
        batch = list(changes)
        for w in list(self._waiters):
            with contextlib.suppress(RuntimeError):
                w.loop.call_soon_threadsafe(w.push, batch)


def silent_segments(ctx: ServerContext) -> frozenset[str]:
    """Segments whose changes are not sent out (``emit_events: false``): the live
    evaluator's set, else read from the registry (under the store lock)."""
    if ctx.live is not None:
        return ctx.live.silent
    return frozenset(s.id for s in ctx.app.registry.current().values() if not s.emit_events)


def segment_holdouts(ctx: ServerContext) -> Mapping[str, Holdout]:
    """Each segment's holdout: the live evaluator's, else read from the registry (under
    the store lock)."""
    if ctx.live is not None:
        return ctx.live.holdouts
    return saved_holdouts(ctx.app)


def query_changes(
    ctx: ServerContext,
    *,
    segment_id: str | None,
    profile_id: str | None,
    since: str | None,
    until: str | None,
    after: int | None,
    limit: int,
    entered: bool | None = None,
) -> dict[str, Any]:
    """A page of the change log (``after`` is the cursor: the last seq read)."""
    lo, hi = parse_at(since, "since"), parse_at(until, "until")

    def run() -> dict[str, Any]:
        log = ctx.app.changes
        rows: list[LoggedChange] = []
        cursor = after
        while len(rows) <= limit:
            page = log.query(
                segment_id=segment_id,
                profile_id=profile_id,
                since=lo,
                until=hi,
                after_seq=cursor,
                limit=limit + 1 if entered is None else 5000,
            )
            rows += [r for r in page if entered is None or r.entered == entered]
            if entered is None or len(page) < 5000:
                break
            cursor = page[-1].seq
        more = len(rows) > limit
        rows = rows[:limit]
        holdouts = segment_holdouts(ctx)
        return {
            "changes": [change_json(c, holdouts) for c in rows],
            "next_cursor": rows[-1].seq if more and rows else None,
        }

    return ctx.locked(run)


def hub(ctx: ServerContext) -> ChangeHub:
    return ctx.part("change_hub", ChangeHub)


async def background(ctx: ServerContext) -> None:
    """Subscribe the hub to the live evaluator for the server's lifetime."""
    if ctx.live is not None:
        live = ctx.live
        unsubscribe = await ctx.run(live.subscribe, hub(ctx).notify)
        try:
            await asyncio.Event().wait()
        finally:
            with ctx.lock:
                unsubscribe()


@router.get("", response_model=ChangesPage, dependencies=[Depends(admin_key)])
async def list_changes(
    ctx: Ctx,
    segment_id: str | None = None,
    profile_id: str | None = None,
    entered: Annotated[bool | None, Query(description="only entries (true) or exits")] = None,
    since: Annotated[str | None, Query(description="changes at or after this instant")] = None,
    until: Annotated[str | None, Query(description="changes at or before this instant")] = None,
    after: Annotated[int | None, Query(ge=0, description="cursor: last seq read")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    """The membership change log of every segment, filterable, in seq order."""
    return await ctx.run(
        query_changes,
        ctx,
        segment_id=segment_id,
        profile_id=profile_id,
        since=since,
        until=until,
        after=after,
        limit=limit,
        entered=entered,
    )


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    dependencies=[Depends(stream_auth)],
)
async def stream_changes(
    request: Request,
    ctx: Ctx,
    api_key: Annotated[
        str | None,
        Query(
            description="a stream token from POST /v1/stream-tokens, for clients that "
            "cannot send the Authorization header (EventSource); never an API key"
        ),
    ] = None,
    segment_id: Annotated[
        list[str] | None, Query(description="only these segments (repeat the parameter)")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="start after this seq (default: now)")
    ] = None,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> EventSourceResponse:
    """Server-Sent Events of membership changes; resume with ``Last-Event-ID``.  Auth:
    the admin key as ``Authorization: Bearer`` (read the stream with ``fetch``), or a
    stream token as ``api_key`` (``EventSource``)."""
    wanted = set(segment_id) if segment_id else None
    if wanted:
        known = await ctx.run(ctx.app.registry.current)
        unknown = sorted(wanted - set(known))
        if unknown:
            raise ApiError(404, f"unknown segment {unknown[0]!r}")
    start: int | None = after
    if last_event_id is not None:
        try:
            start = int(last_event_id)
        except ValueError:
            raise ApiError(
                400, f"Last-Event-ID {last_event_id[:40]!r} is not a change seq"
            ) from None
    cursor = start if start is not None else await ctx.run(last_change_seq, ctx.app)
    h = hub(ctx)
    silent = await ctx.run(silent_segments, ctx) if ctx.live is None else None
    holdouts = await ctx.run(segment_holdouts, ctx) if ctx.live is None else None

    def sent(c: LoggedChange) -> bool:
        if wanted is not None and c.segment_id not in wanted:
            return False
        return c.segment_id not in (silent if silent is not None else silent_segments(ctx))

    def read(after_seq: int) -> list[LoggedChange]:
        one = next(iter(wanted)) if wanted and len(wanted) == 1 else None
        rows = ctx.app.changes.query(segment_id=one, after_seq=after_seq, limit=READ_BATCH)
        return rows

    def sse(c: LoggedChange) -> ServerSentEvent:
        return ServerSentEvent(
            data=orjson.dumps(
                change_json(c, holdouts if holdouts is not None else segment_holdouts(ctx))
            ).decode(),
            event="entered" if c.entered else "exited",
            id=str(c.seq),
        )

    async def events() -> AsyncIterator[ServerSentEvent]:
        nonlocal cursor
        waiter = h.register()
        from_log = True
        try:
            # an id-only block sets the client's Last-Event-ID, so a reconnect before
            # the first change still resumes from here
            yield ServerSentEvent(comment="segflow change stream", id=str(cursor), retry=2000)
            while not await request.is_disconnected():
                if from_log or waiter.lagged:
                    # everything pushed so far is in the log (changes are stored first)
                    waiter.items.clear()
                    waiter.lagged = False
                    rows = await ctx.run(read, cursor)
                    for c in rows:
                        cursor = c.seq
                        if sent(c):
                            yield sse(c)
                    from_log = len(rows) >= READ_BATCH
                    continue
                while waiter.items and not waiter.lagged:
                    c = waiter.items.popleft()
                    if c.seq <= cursor:
                        continue
                    cursor = c.seq
                    if sent(c):
                        yield sse(c)
                waiter.event.clear()
                if waiter.items or waiter.lagged:
                    continue
                try:
                    await asyncio.wait_for(waiter.event.wait(), IDLE_POLL_S)
                except TimeoutError:
                    from_log = True  # a quiet spell: re-check the log (no live evaluator)
        finally:
            h.unregister(waiter)

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})


admin_only(router)
for _route in router.routes:
    if isinstance(_route, APIRoute) and _route.path.endswith("/stream"):
        _route.openapi_extra = {"security": [{"adminKey": []}, {"streamToken": []}]}
