"""API key management over HTTP (admin key): list, create, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from segflow.api.deps import get_ctx, require_admin
from segflow.store.duckdb.keys import ApiKey


async def _admin(request: Request) -> ApiKey:
    return require_admin(request)


router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[Depends(_admin)])


class KeyOut(BaseModel):
    id: str
    kind: Literal["write", "admin"]
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


class KeyCreate(BaseModel):
    kind: Literal["write", "admin"]
    name: str = Field("", max_length=200)


class KeyCreated(KeyOut):
    token: str = Field(description="The key itself: shown once, only its hash is stored.")


def _out(k: ApiKey) -> KeyOut:
    return KeyOut(
        id=k.id, kind=k.kind, name=k.name, created_at=k.created_at, revoked_at=k.revoked_at
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
    new = await ctx.run(ctx.key_store.create, body.kind, body.name)
    return KeyCreated(**_out(new.key).model_dump(), token=new.token)


@router.delete("/{key_id}")
async def revoke_key(key_id: str, request: Request) -> KeyOut:
    """Revoke a key by id: it stops working immediately."""
    ctx = get_ctx(request)
    return _out(await ctx.run(ctx.key_store.revoke, key_id))
