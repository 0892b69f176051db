"""The web UI's reads (admin key): the builder's catalogue and the dashboard.

Thin: ``segflow.service.overview`` computes them, with bounded reads at any store size.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from segflow.api.deps import Ctx, admin_key, admin_only
from segflow.api.schemas import Catalogue, ErrorResponse
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
    segment builder's pickers offer."""
    return await ctx.run(overview.catalogue, ctx.app)


admin_only(router)
