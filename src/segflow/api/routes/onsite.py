"""The on-site read (publishable key): the public segments of the visitor of a shop's
web page, called from the browser.

``GET /v1/onsite/segments`` takes the publishable key as the ``X-Segflow-Key`` header
or the ``key`` parameter and the visitor's anonymous id from the ``ajs_anonymous_id``
cookie (or the ``anonymous_id`` parameter); it answers ``{"segments": [...]}`` with
only the public segments, from memory (the visitor index and the segment look-up
index), with CORS for the key's allowed origins.  ``OPTIONS`` answers the browser's
preflight.  With an edge process in front, the edge answers both from its own copy
of the indexes and hands this route only what it cannot answer.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import ORJSONResponse, Response
from pydantic import BaseModel, Field

from segflow.api.deps import Ctx, ServerContext
from segflow.api.http import ApiError
from segflow.api.routes.profiles import segment_index, visitor_index
from segflow.api.schemas import ErrorResponse
from segflow.service import onsite
from segflow.service.onsite import (
    KEY_HEADER,
    ROUTE,
    VisitorError,
    answer_headers,
    origin_allowed,
    preflight_headers,
    public_of,
    visitor_id,
)
from segflow.store.records.keys import ApiKey

router = APIRouter(
    tags=["on-site"], responses={s: {"model": ErrorResponse} for s in (400, 401, 403)}
)

SECURITY: Final[dict[str, Any]] = {
    "security": [{"publishableKey": []}, {"publishableKeyParam": []}]
}
KeyParam = Annotated[
    str | None,
    Query(
        max_length=200,
        description="The publishable key (instead of the X-Segflow-Key header: a "
        "publishable key is public, and a request without custom headers needs no "
        "preflight).",
    ),
]


class OnsiteSegments(BaseModel):
    segments: list[str] = Field(
        description="The public segments the visitor is in now, sorted (empty for an "
        "unknown visitor)."
    )


async def background(ctx: ServerContext) -> None:
    """Seed the visitor index and follow every group commit (both under the store lock,
    so no load falls between them)."""
    idx = visitor_index(ctx)

    def start() -> None:
        onsite.seed_visitors(ctx.app, idx)
        if ctx.ingestor is not None:
            ctx.ingestor.stored_listeners.append(
                lambda fresh: onsite.visitors_stored(ctx.app, idx, fresh)
            )

    await ctx.run(start)
    await asyncio.Event().wait()


def publishable_key(request: Request, param: str | None) -> ApiKey:
    """The request's publishable key: 401 missing or unknown, 403 another kind."""
    token = request.headers.get(KEY_HEADER) or param
    if not token:
        raise ApiError(
            401,
            "missing publishable key: send it as the X-Segflow-Key header or the key parameter",
            [{"path": "key", "message": "missing"}],
        )
    ctx: ServerContext = request.app.state.ctx
    key = ctx.key_store.verify(token)
    if key is None:
        raise ApiError(401, "unknown or revoked publishable key")
    if key.kind != "publishable":
        raise ApiError(
            403,
            f"a {key.kind} key cannot use this endpoint: it needs a publishable key "
            f"(a {key.kind} key must never be put in a web page; revoke it if it was)",
        )
    return key


def _refused(origin: str) -> ApiError:
    return ApiError(
        403,
        f"origin {origin!r} is not allowed to use this publishable key",
        [{"path": "Origin", "message": "not among the key's allowed origins"}],
    )


@router.get(ROUTE, response_model=OnsiteSegments, openapi_extra=SECURITY)
async def onsite_segments(
    request: Request,
    ctx: Ctx,
    key: KeyParam = None,
    anonymous_id: Annotated[
        str | None,
        Query(
            description="The visitor's anonymous id (instead of the ajs_anonymous_id "
            "cookie); at most 200 characters (400 beyond).",
        ),
    ] = None,
) -> Response:
    """The public segments of the visitor (publishable key; for the shop's pages)."""
    pk = publishable_key(request, key)
    origin = request.headers.get("origin")
    if not origin_allowed(pk.origins, origin):
        raise _refused(origin or "")
    headers = answer_headers(origin)
    try:
        anonymous = visitor_id(anonymous_id, request.headers.get("cookie"))
    except VisitorError as e:
        raise ApiError(
            400,
            f"malformed visitor id: {e}",
            [{"path": e.where, "message": e.message}],
            headers=headers,
        ) from None
    segments = await _segments(ctx, anonymous) if anonymous is not None else []
    return ORJSONResponse({"segments": segments}, headers=headers)


async def _segments(ctx: ServerContext, anonymous_id: str) -> list[str]:
    visitors = visitor_index(ctx)
    index = segment_index(ctx)
    if not (visitors.ready and index.ready):
        return await ctx.run(onsite.visitor_segments, ctx.app, ctx.live, anonymous_id)
    pid = visitors.resolve(anonymous_id)
    found = index.get(pid) if pid is not None else None
    if not found:
        return []
    return public_of(found, onsite.public_segments(ctx.app, ctx.live))


@router.options(ROUTE, status_code=204, response_class=Response, openapi_extra=SECURITY)
async def onsite_preflight(request: Request, ctx: Ctx, key: KeyParam = None) -> Response:
    """The browser's CORS preflight: allowed when the ``Origin`` may use the key in
    ``key``, or (the key in the header, which a preflight does not carry) some active
    publishable key."""
    origin = request.headers.get("origin")
    if not origin:
        raise ApiError(
            400,
            "a CORS preflight needs an Origin header",
            [{"path": "Origin", "message": "missing"}],
        )
    if key is not None:
        allowed = origin_allowed(publishable_key(request, key).origins, origin)
    else:
        allowed = any(origin_allowed(o, origin) for o in ctx.key_store.publishable().values())
    if not allowed:
        raise _refused(origin)
    return Response(status_code=204, headers=preflight_headers(origin))
