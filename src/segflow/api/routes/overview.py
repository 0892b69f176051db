"""The web UI's reads (admin key): the builder's catalogue and the dashboard.

Thin: ``segflow.service.overview`` computes them, with bounded reads at any store size.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from segflow.api.deps import Ctx, admin_key, admin_only
from segflow.api.schemas import Catalogue, Dashboard, ErrorResponse
from segflow.service import overview

router = APIRouter(
    prefix="/v1",
    tags=["overview"],
    dependencies=[Depends(admin_key)],
    responses={s: {"model": ErrorResponse} for s in (401, 403)},
)


@router.get("/catalogue", response_model=Catalogue)
async def get_catalogue(ctx: Ctx) -> Any:
    """Event names (count, last seen, fields with types and examples), trait keys
    (type, profiles, examples), computed traits, segments and page paths: what the
    segment builder's pickers offer.  The statistics are reused for 30 s (the segments
    are always current)."""
    cache = ctx.part("catalogue_cache", overview.CatalogueCache)
    return await ctx.run(overview.catalogue, ctx.app, cache)


@router.get("/dashboard", response_model=Dashboard)
async def get_dashboard(ctx: Ctx) -> Any:
    """Profiles, events today and in the last hour, the ingest rate, the segment
    count, the segments that grew and shrank most over 7 days, and event alerts (a
    daily event that stopped; a new event no segment uses)."""
    rate = ctx.ingestor.stats.rate() if ctx.ingestor is not None else 0.0
    return await ctx.run(overview.dashboard, ctx.app, ctx.live, ctx.clock.now(), rate)


admin_only(router)
