"""API key management over HTTP (admin key): list, create, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from segflow.api.deps import get_ctx, require_admin
from segflow.api.http import ApiError
from segflow.store.records.keys import ApiKey


async def _admin(request: Request) -> ApiKey:
    return require_admin(request)


router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[Depends(_admin)])


class KeyOut(BaseModel):
    id: str
    kind: Literal["write", "admin", "publishable"]
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    origins: list[str] = Field(
        default_factory=list,
        description="A publishable key's allowed origins (empty: any origin).",
    )


class KeyCreate(BaseModel):
    kind: Literal["write", "admin", "publishable"] = Field(
        description="write: ingestion; admin: everything; publishable: only the on-site "
        "segments read (GET /v1/onsite/segments), safe to put in a web page"
    )
    name: str = Field("", max_length=200)
    origins: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Publishable keys only: the web origins (https://shop.example) allowed "
        "to use the key from a browser; empty: any origin.",
    )


class KeyCreated(KeyOut):
    token: str = Field(description="The key itself: shown once, only its hash is stored.")


def _out(k: ApiKey) -> KeyOut:
    return KeyOut(
        id=k.id,
        kind=k.kind,
        name=k.name,
        created_at=k.created_at,
        revoked_at=k.revoked_at,
        origins=list(k.origins),
    )


@router.get("")
async def list_keys(request: Request) -> list[KeyOut]:
    """Every key (active and revoked), without secrets."""
    ctx = get_ctx(request)
    return [_out(k) for k in await ctx.run(ctx.key_store.list)]


@router.post("", status_code=201)
async def create_key(body: KeyCreate, request: Request) -> KeyCreated:
    """Create a key; the response holds the only copy of the token."""
    ctx = get_ctx(request)
    try:
        new = await ctx.run(ctx.key_store.create, body.kind, body.name, body.origins)
    except ValueError as e:
        path, _, message = str(e).partition(": ")
        raise ApiError(422, f"invalid request: {e}", [{"path": path, "message": message}]) from None
    return KeyCreated(**_out(new.key).model_dump(), token=new.token)


@router.delete("/{key_id}")
async def revoke_key(key_id: str, request: Request) -> KeyOut:
    """Revoke a key by id: it stops working immediately."""
    ctx = get_ctx(request)
    return _out(await ctx.run(ctx.key_store.revoke, key_id))
