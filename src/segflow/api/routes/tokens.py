"""Stream tokens (admin key): a short-lived token that opens the change stream, for
``EventSource`` clients that cannot send the ``Authorization`` header
(``segflow.service.stream_tokens``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from segflow.api.deps import Ctx, admin_key, admin_only, stream_tokens
from segflow.api.schemas import ErrorResponse, StreamTokenOut
from segflow.model.time import format_instant
from segflow.store.records.keys import ApiKey

router = APIRouter(
    prefix="/v1/stream-tokens",
    tags=["changes"],
    responses={s: {"model": ErrorResponse} for s in (401, 403)},
)


@router.post("", status_code=201, response_model=StreamTokenOut)
async def create_stream_token(ctx: Ctx, key: Annotated[ApiKey, Depends(admin_key)]) -> Any:
    """A token for ``GET /v1/changes/stream?api_key=<token>``: valid 5 minutes, for the
    stream only, revoked with the admin key that asked for it.  A stream opened with it
    stays open past its expiry; a reconnect after it needs a new token."""
    issued = stream_tokens(ctx).issue(key.id, ctx.clock.now())
    return {
        "token": issued.token,
        "expires_at": format_instant(issued.expires_at),
        "scope": issued.scope,
    }


admin_only(router)
