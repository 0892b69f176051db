"""Priority groups API (admin key): definitions, resolved members and exports.

A group's resolved members are segments too (``group:segment``), so their members
pages, changes, explain and exports are also at ``/v1/segments/{group:segment}/...``.
Bodies are parsed by ``segflow.model.groups`` so every error names its JSON path (422).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from segflow.api.deps import Ctx, ServerContext, admin_key, parse_at
from segflow.api.http import ApiError
from segflow.api.routes.segments import ERRORS, problems_error, read_definition, stream_export
from segflow.api.schemas import GroupList, GroupMembers, GroupOut, GroupSaveResult
from segflow.model.errors import DefinitionError
from segflow.model.groups import Group, parse_group_report
from segflow.model.time import format_instant
from segflow.service import groups as group_service
from segflow.service import segments as segment_service

GROUP_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GroupDefinition"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}

router = APIRouter(
    prefix="/v1/groups",
    tags=["groups"],
    dependencies=[Depends(admin_key)],
    responses=ERRORS,
)


def _parse(doc: Any, path_id: str | None) -> Group:
    if path_id is not None and isinstance(doc, dict):
        body_id = doc.setdefault("group", path_id)
        if body_id != path_id:
            raise ApiError(
                422,
                "invalid group definition",
                [{"path": "group", "message": f"{body_id!r} differs from the URL's {path_id!r}"}],
            )
    report = parse_group_report(doc)
    if report.problems or report.group is None:
        raise problems_error(DefinitionError(report.problems), message="invalid group definition")
    return report.group


def _out(ctx: ServerContext, g: Group) -> dict[str, Any]:
    return group_service.group_json(ctx.app, ctx.live, g)


def _get(ctx: ServerContext, group_id: str) -> Group:
    try:
        return group_service.get_group(ctx.app, group_id)
    except KeyError:
        raise ApiError(404, f"unknown group {group_id!r}") from None


async def _save(
    ctx: ServerContext, doc: Any, path_id: str | None, *, create: bool, dry_run: bool
) -> Any:
    group = _parse(doc, path_id)
    paths = {group.id: ""}

    def run() -> dict[str, Any]:
        old = ctx.app.registry.groups().get(group.id)
        if create and old is not None:
            raise ApiError(
                409, f"group {group.id!r} exists; update it with PUT /v1/groups/{group.id}"
            )
        try:
            diffs = group_service.group_diffs(ctx.app, group, ctx.clock.now(), paths)
            if dry_run:
                shown, status = (old if old is not None else group), "dry_run"
            else:
                ((shown, status),) = group_service.save_groups(ctx.app, ctx.live, [group], paths)
        except DefinitionError as e:
            raise problems_error(e, message="invalid group definition") from None
        return {
            "group": _out(ctx, shown),
            "status": status,
            "diff": [segment_service.diff_dict(d) for d in diffs],
        }

    return await ctx.run(run)


DryRun = Annotated[bool, Query(description="only answer who the save would move")]


@router.get("", response_model=GroupList, response_model_exclude_none=True)
async def list_groups(ctx: Ctx) -> Any:
    """Every priority group with its listed segments and the live size of each
    resolution."""

    def run() -> dict[str, Any]:
        return {"groups": [_out(ctx, g) for g in ctx.app.registry.groups().values()]}

    return await ctx.run(run)


@router.post(
    "",
    status_code=201,
    response_model=GroupSaveResult,
    response_model_exclude_none=True,
    openapi_extra=GROUP_BODY,
)
async def create_group(request: Request, ctx: Ctx, dry_run: DryRun = False) -> Any:
    """Create a group (409 if it exists); 422 for an unknown segment, a segment already
    in another group, or a cycle through a resolution."""
    return await _save(ctx, await read_definition(request), None, create=True, dry_run=dry_run)


@router.put(
    "/{group_id}",
    response_model=GroupSaveResult,
    response_model_exclude_none=True,
    openapi_extra=GROUP_BODY,
)
async def put_group(group_id: str, request: Request, ctx: Ctx, dry_run: DryRun = False) -> Any:
    """Create or replace a group; profiles that move between its resolved members are
    logged at once (``definition_changed``)."""
    doc = await read_definition(request)
    return await _save(ctx, doc, group_id, create=False, dry_run=dry_run)


@router.get("/{group_id}", response_model=GroupOut, response_model_exclude_none=True)
async def get_group(group_id: str, ctx: Ctx) -> Any:
    def run() -> dict[str, Any]:
        return _out(ctx, _get(ctx, group_id))

    return await ctx.run(run)


@router.delete("/{group_id}", status_code=204, response_class=Response)
async def delete_group(group_id: str, ctx: Ctx) -> Response:
    """Delete a group (its resolutions' members exit); 409 while a segment reads one of
    its resolutions."""

    def run() -> None:
        _get(ctx, group_id)
        try:
            group_service.delete_group(ctx.app, ctx.live, group_id)
        except DefinitionError as e:
            raise problems_error(e, 409, f"group {group_id!r} cannot be deleted") from None

    await ctx.run(run)
    return Response(status_code=204)


@router.get("/{group_id}/members", response_model=GroupMembers)
async def group_members(
    group_id: str,
    ctx: Ctx,
    at: Annotated[str | None, Query(description="ISO 8601 instant (default: now, live)")] = None,
) -> Any:
    """Each listed segment, highest priority first, with the profiles that resolve to
    it (every profile is under at most one)."""
    when = parse_at(at)

    def run() -> dict[str, Any]:
        _get(ctx, group_id)
        members = group_service.group_members(ctx.app, ctx.live, group_id, when)
        return {
            "group": group_id,
            "at": format_instant(when) if when else None,
            "members": members,
            "size": sum(len(v) for v in members.values()),
        }

    return await ctx.run(run)


@router.get(
    "/{group_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
async def export_group(
    group_id: str,
    ctx: Ctx,
    format: Annotated[Literal["csv", "parquet"], Query()] = "csv",
    at: Annotated[str | None, Query(description="ISO 8601 instant (default: now, live)")] = None,
    include_held_out: Annotated[
        bool,
        Query(description="list the segments' holdouts too, marked in a held_out column"),
    ] = False,
) -> StreamingResponse:
    """Every profile in the group's resolution with the segment it resolves to (a
    ``segment`` column) and its current traits, as CSV or Parquet, streamed; profiles
    in their segment's holdout are left out unless ``include_held_out``."""
    when = parse_at(at)

    def run() -> tuple[Path, int]:
        _get(ctx, group_id)
        fd, name = tempfile.mkstemp(prefix="segflow-group-", suffix=f".{format}")
        os.close(fd)
        path = Path(name)
        try:
            n = group_service.export_group_to(
                ctx.app, ctx.live, group_id, path, when, include_held_out=include_held_out
            )
            return path, n
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    path, size = await ctx.run(run)
    return stream_export(path, f"{group_id}.{format}", {"X-Group-Size": str(size)})
