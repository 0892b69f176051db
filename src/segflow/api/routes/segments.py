"""Segments API (admin key): definitions, versions with enter/exit diffs, previews,
members, exports, explain, the change log and size over time.

Request bodies are documented with the typed ``SegmentDefinition`` model but parsed by
``segflow.model.definition`` so every error names its JSON path (422).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse

from segflow.api.deps import Ctx, ServerContext, admin_key, admin_only, get_ctx, parse_at
from segflow.api.http import ApiError
from segflow.api.limits import depth_message, too_deep
from segflow.api.routes.changes import query_changes
from segflow.api.schemas import (
    ChangesPage,
    ErrorResponse,
    EstimateResult,
    ExperimentResult,
    ExplainResult,
    MembersPage,
    PreviewResult,
    SaveResult,
    SegmentDaily,
    SegmentList,
    SegmentOut,
    SegmentSummaries,
    SegmentVersions,
    SizeHistory,
    ValidateResult,
)
from segflow.model.definition import Segment, parse_segment_report
from segflow.model.errors import DefinitionError, NameWarning
from segflow.service import estimate as estimate_service
from segflow.service import overview
from segflow.service import segments as segment_service
from segflow.service.handle import Segflow
from segflow.service.live import PreparedSave

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 413, 422)
}
DEFINITION_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SegmentDefinition"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
MAX_DEFINITION_BYTES: Final = 256 * 1024


router = APIRouter(
    prefix="/v1/segments",
    tags=["segments"],
    dependencies=[Depends(admin_key)],
    responses=ERRORS,
)

AtQuery = Annotated[
    str | None, Query(description="ISO 8601 instant to evaluate as of (default: now)")
]


def problems_error(e: DefinitionError, status: int = 422, message: str = "") -> ApiError:
    errors = [{"path": p.path, "message": p.message} for p in e.problems]
    return ApiError(status, message or "invalid segment definition", errors)


async def read_definition(request: Request, path_id: str | None = None) -> Any:
    """The body as a document: JSON (or YAML with a YAML content type); ``check`` turns
    it into a Segment."""
    raw = await request.body()
    if len(raw) > MAX_DEFINITION_BYTES:
        raise ApiError(413, f"definition body over {MAX_DEFINITION_BYTES} bytes")
    ctype = request.headers.get("content-type", "application/json").lower()
    if "yaml" in ctype:
        import yaml

        try:
            doc: Any = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ApiError(400, f"malformed YAML: {e}") from None
    else:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, f"malformed JSON: {e}") from None
    limit = get_ctx(request).settings.max_definition_depth
    where = too_deep([("", doc)], limit)
    if where is not None:
        msg = depth_message(limit)
        raise ApiError(
            422, f"invalid segment definition: {where}: {msg}", [{"path": where, "message": msg}]
        )
    if path_id is not None and isinstance(doc, dict):
        body_id = doc.setdefault("id", path_id)
        if body_id != path_id:
            raise ApiError(
                422,
                "invalid segment definition",
                [{"path": "id", "message": f"{body_id!r} differs from the URL's {path_id!r}"}],
            )
    return doc


def check(ctx: ServerContext, doc: Any) -> tuple[Segment, list[NameWarning]]:
    """The document as a Segment with its warnings, or a 422 listing every problem
    (syntax, values, limits and references at once); under the store lock."""
    report = parse_segment_report(doc, ctx.settings.definition_limits)
    checked = segment_service.check_drafts(ctx.app, [report])
    if checked.problems or report.segment is None:
        raise problems_error(DefinitionError(checked.problems))
    return report.segment, checked.warnings


def _warnings(warnings: list[NameWarning]) -> list[dict[str, object]]:
    return [w.to_dict() for w in warnings]


def _segment_out(seg: Segment, size: int | None = None) -> dict[str, Any]:
    return {"id": seg.id, "version": seg.version, "definition": seg.to_dict(), "size": size}


def _current_size(ctx: ServerContext, sid: str) -> int | None:
    if ctx.live is not None:
        try:
            return len(ctx.live.members(sid))
        except KeyError:
            return None
    points = segment_service.size_history(ctx.app, sid)
    return int(points[-1]["size"]) if points else None


def _get(ctx: ServerContext, sid: str) -> Segment:
    seg = ctx.app.registry.get(sid)
    if seg is None:
        raise ApiError(404, f"unknown segment {sid!r}")
    return seg


async def _save_request(
    ctx: ServerContext, doc: Any, *, create: bool, dry_run: bool
) -> dict[str, Any]:
    """Check (under the store lock), do the heavy part of the save without the lock
    (``LiveEvaluator.prepare_save``: ingestion goes on meanwhile), then save under
    the lock."""

    def checked() -> tuple[Segment, list[NameWarning]]:
        seg, warnings = check(ctx, doc)
        _previous(ctx, seg, create)
        return seg, warnings

    seg, warnings = await ctx.run(checked)
    prepared = None
    if ctx.live is not None and not dry_run:
        prepared = await asyncio.to_thread(_prepare, ctx, seg)
    return await ctx.run(
        _save, ctx, seg, warnings, create=create, dry_run=dry_run, prepared=prepared
    )


def _prepare(ctx: ServerContext, seg: Segment) -> PreparedSave | None:
    """``prepare_save`` over a snapshot opened under the lock, off the lock."""
    assert ctx.live is not None
    with ctx.lock:
        cursor = ctx.live.open_snapshot()
    try:
        return ctx.live.prepare_save(seg, cursor)
    except DefinitionError:
        return None  # the save under the lock reports it
    finally:
        cursor.close()


def _previous(ctx: ServerContext, seg: Segment, create: bool) -> Segment | None:
    """The current version (409 when creating an existing id, 404 when updating an
    unknown one)."""
    old = ctx.app.registry.get(seg.id)
    if create and old is not None:
        raise ApiError(409, f"segment {seg.id!r} exists; update it with PUT /v1/segments/{seg.id}")
    if not create and old is None:
        raise ApiError(404, f"unknown segment {seg.id!r}; create it with POST /v1/segments")
    return old


def _save(
    ctx: ServerContext,
    seg: Segment,
    warnings: list[NameWarning],
    *,
    create: bool,
    dry_run: bool,
    prepared: PreparedSave | None = None,
) -> dict[str, Any]:
    app = ctx.app
    old = _previous(ctx, seg, create)
    try:
        if dry_run:
            diff: Any = (
                ctx.live.preview_edit(seg)
                if ctx.live is not None
                else segment_service.edit_diff(app, seg, ctx.clock.now())
            )
            shown = old if old is not None else seg
            return {
                "segment": _segment_out(shown),
                "status": "dry_run",
                "diff": segment_service.diff_dict(diff),
                "warnings": _warnings(warnings),
            }
        if ctx.live is not None:
            _, diff, _changes = ctx.live.save(seg, prepared)
            saved = _get(ctx, seg.id)
        else:
            diff = segment_service.edit_diff(app, seg, ctx.clock.now())
            app.registry.save([seg])
            saved = _get(ctx, seg.id)
            if saved.mode == "static" and (old is None or old.version != saved.version):
                app.snapshot(saved)
    except DefinitionError as e:
        raise problems_error(e) from None
    status = (
        "created" if old is None else ("unchanged" if old.version == saved.version else "updated")
    )
    return {
        "segment": _segment_out(saved, diff.size_after),
        "status": status,
        "diff": segment_service.diff_dict(diff),
        "warnings": _warnings(warnings),
        "unknown_ids": app.registry.known_profiles(seg.members or ())[1],
    }


@router.get("", response_model=SegmentList, response_model_exclude_none=True)
async def list_segments(ctx: Ctx) -> Any:
    """Every current segment with its definition and size."""

    def run() -> dict[str, Any]:
        segs = ctx.app.registry.current()
        return {"segments": [_segment_out(s, _current_size(ctx, s.id)) for s in segs.values()]}

    return await ctx.run(run)


@router.post(
    "",
    status_code=201,
    response_model=SaveResult,
    response_model_exclude_none=True,
    openapi_extra=DEFINITION_BODY,
)
async def create_segment(request: Request, ctx: Ctx) -> Any:
    """Create a segment (409 if the id exists); returns who entered it."""
    doc = await read_definition(request)
    return await _save_request(ctx, doc, create=True, dry_run=False)


@router.post(
    "/validate",
    response_model=ValidateResult,
    response_model_exclude_none=True,
    openapi_extra=DEFINITION_BODY,
)
async def validate_segment(request: Request, ctx: Ctx) -> Any:
    """Check a definition (syntax, values, limits, references, cycles: every problem at
    once) without saving it; names the store has never seen come back as warnings."""
    try:
        doc = await read_definition(request)
    except ApiError as e:
        if e.status != 422:
            raise
        return {"valid": False, "errors": e.errors, "warnings": []}

    def run() -> dict[str, Any]:
        report = parse_segment_report(doc, ctx.settings.definition_limits)
        checked = segment_service.check_drafts(ctx.app, [report])
        out: dict[str, Any] = {
            "valid": not checked.problems,
            "errors": problems_error(DefinitionError(checked.problems)).errors,
            "warnings": _warnings(checked.warnings),
        }
        if report.segment is not None and not checked.problems:
            out["canonical"] = report.segment.to_dict()
        return out

    return await ctx.run(run)


@router.post(
    "/preview",
    response_model=PreviewResult,
    openapi_extra=DEFINITION_BODY,
)
async def preview_segment(request: Request, ctx: Ctx, at: AtQuery = None) -> Any:
    """Size and a sample of members of an unsaved draft."""
    return await _on_draft(request, ctx, at, segment_service.preview)


async def _on_draft(
    request: Request,
    ctx: Ctx,
    at: str | None,
    compute: Callable[[Segflow, Segment, datetime], dict[str, Any]],
) -> dict[str, Any]:
    """Read and check the draft in the body, then ``compute`` its answer as of ``at``
    (default now) under the lock, with the name warnings added; 422 for a bad draft."""
    doc = await read_definition(request)
    when = parse_at(at) or ctx.clock.now()

    def run() -> dict[str, Any]:
        seg, warnings = check(ctx, doc)
        out = compute(ctx.app, seg, when)
        out["warnings"] = _warnings(warnings)
        return out

    try:
        return await ctx.run(run)
    except DefinitionError as e:
        raise problems_error(e) from None


@router.post(
    "/estimate",
    response_model=EstimateResult,
    openapi_extra=DEFINITION_BODY,
)
async def estimate_segment(request: Request, ctx: Ctx, at: AtQuery = None) -> Any:
    """What saving a draft would cost: its size and share of profiles, the features it
    needs (already computed for saved segments, or new), the stored rows its new features
    read, and the evaluation time it adds, measured with one library evaluation with and
    one without it.  Kept apart from the preview, which evaluates the draft alone and
    must stay fast while a definition is being edited."""
    return await _on_draft(
        request, ctx, at, lambda app, seg, when: estimate_service.estimate(app, seg, when).to_dict()
    )


@router.get("/summary", response_model=SegmentSummaries)
async def segment_summaries(ctx: Ctx) -> Any:
    """Every segment as a list shows it: name, description, tags, folder, mode,
    version and when it was saved, size and share of the profiles now, change over 7
    and 30 days, and its size at the end of each of the last 31 UTC days (from the
    change log, else batch evaluations)."""

    def run() -> dict[str, Any]:
        return {"segments": overview.segment_summaries(ctx.app, ctx.live, ctx.clock.now())}

    return await ctx.run(run)


@router.get("/{segment_id}", response_model=SegmentOut, response_model_exclude_none=True)
async def get_segment(segment_id: str, ctx: Ctx) -> Any:
    def run() -> dict[str, Any]:
        return _segment_out(_get(ctx, segment_id), _current_size(ctx, segment_id))

    return await ctx.run(run)


@router.put(
    "/{segment_id}",
    response_model=SaveResult,
    response_model_exclude_none=True,
    openapi_extra=DEFINITION_BODY,
)
async def update_segment(
    segment_id: str,
    request: Request,
    ctx: Ctx,
    dry_run: Annotated[bool, Query(description="only return the enter/exit diff")] = False,
) -> Any:
    """Save a new version; the response holds the enter/exit diff it applied (with
    ``dry_run=true``: the diff it would apply, nothing saved)."""
    doc = await read_definition(request, segment_id)
    return await _save_request(ctx, doc, create=False, dry_run=dry_run)


@router.delete("/{segment_id}", status_code=204, response_class=Response)
async def delete_segment(
    segment_id: str,
    ctx: Ctx,
    force: Annotated[bool, Query(description="delete even a protected segment")] = False,
) -> Response:
    """Delete a segment (its members exit); protected or referenced ones answer 409."""

    def run() -> None:
        _get(ctx, segment_id)
        try:
            if ctx.live is not None:
                ctx.live.delete(segment_id, force=force)
            else:
                ctx.app.delete(segment_id, force=force)
        except DefinitionError as e:
            raise problems_error(e, 409, f"segment {segment_id!r} cannot be deleted") from None

    await ctx.run(run)
    return Response(status_code=204)


@router.get("/{segment_id}/members", response_model=MembersPage)
async def segment_members(
    segment_id: str,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    at: AtQuery = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            description="only members whose id, identity, name or email contains this "
            "(case-insensitive; send it again with the cursor)",
        ),
    ] = None,
    columns: Annotated[
        bool,
        Query(description="add rows: name, email, ltv, orders, since, last order, held out"),
    ] = False,
) -> Any:
    """Members in profile id order, a page at a time (the cursor keeps the instant);
    ``q`` searches them, ``columns=true`` adds a table row per member."""
    when = parse_at(at)

    def run() -> dict[str, Any]:
        _get(ctx, segment_id)
        return segment_service.members_page(
            ctx.app,
            ctx.live,
            segment_id,
            limit=limit,
            cursor=cursor,
            at=when,
            q=q.strip() if q else None,
            columns=columns,
        )

    try:
        return await ctx.run(run)
    except ValueError as e:
        raise ApiError(400, str(e), [{"path": "cursor", "message": str(e)}]) from None


@router.get(
    "/{segment_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/vnd.apache.parquet": {}}}},
)
async def export_segment(
    segment_id: str,
    ctx: Ctx,
    format: Annotated[Literal["csv", "parquet"], Query()] = "csv",
    at: AtQuery = None,
    include_held_out: Annotated[
        bool,
        Query(description="list the segment's holdout too, marked in a held_out column"),
    ] = False,
    flat: Annotated[
        bool,
        Query(
            description="put name, email, ltv, orders, since, last_order_at after the "
            "profile id, before the traits"
        ),
    ] = False,
) -> StreamingResponse:
    """Members with their current traits as CSV or Parquet, streamed; members in the
    segment's holdout are left out unless ``include_held_out``; ``flat=true`` adds the
    columns a spreadsheet user expects first."""
    when = parse_at(at)

    def run() -> tuple[Path, int]:
        _get(ctx, segment_id)
        return segment_service.export_file(
            ctx.app, ctx.live, segment_id, format, when, include_held_out=include_held_out,
            flat=flat,
        )  # fmt: skip

    path, size = await ctx.run(run)
    return stream_export(path, f"{segment_id}.{format}", {"X-Segment-Size": str(size)})


def stream_export(path: Path, filename: str, headers: dict[str, str]) -> StreamingResponse:
    """Stream an export file written by the service, removed once sent (or abandoned)."""

    def chunks() -> Iterator[bytes]:
        try:
            with path.open("rb") as fh:
                while block := fh.read(64 * 1024):
                    yield block
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    media = "text/csv" if path.suffix == ".csv" else "application/vnd.apache.parquet"
    return StreamingResponse(
        chunks(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **headers},
    )


@router.get("/{segment_id}/explain", response_model=ExplainResult)
async def explain_segment(
    segment_id: str,
    ctx: Ctx,
    profile_id: Annotated[str, Query(min_length=1)],
    at: AtQuery = None,
) -> dict[str, Any]:
    """Why a profile is (not) a member at an instant: the condition tree with each node's
    truth and the feature values behind it."""
    when = parse_at(at)

    def run() -> dict[str, Any]:
        from segflow.api.routes.destinations import store as destination_store
        from segflow.service.destinations import destination_reach
        from segflow.service.profiles import resolve

        _get(ctx, segment_id)
        pid = resolve(ctx.app, profile_id)
        if pid is None:
            raise ApiError(404, f"unknown profile {profile_id!r}")
        if ctx.live is None:
            raise ApiError(503, "the live evaluator is not running; explain needs it")
        try:
            result: dict[str, Any] = ctx.live.explain(segment_id, pid, when)
        except ValueError as e:
            raise ApiError(400, str(e), [{"path": "at", "message": str(e)}]) from None
        result["destinations"] = destination_reach(destination_store(ctx), pid, segment_id)
        return result

    return await ctx.run(run)


@router.get("/{segment_id}/experiment", response_model=ExperimentResult)
async def segment_experiment(
    segment_id: str,
    ctx: Ctx,
    goal: Annotated[
        Literal["conversion", "revenue_per_member", "orders_per_member"], Query()
    ] = "conversion",
    from_: Annotated[
        str | None,
        Query(
            alias="from",
            description="period start (default: when the current version was saved)",
        ),
    ] = None,
    to: Annotated[str | None, Query(description="period end (default: now)")] = None,
    mde: Annotated[
        float | None,
        Query(gt=0, description="minimum detectable effect (absolute) to size the arms for"),
    ] = None,
) -> Any:
    """Treatment vs holdout on a goal metric: lifts, 95 % interval, p-value, verdict and
    the members needed; 409 when the segment has no holdout."""
    since, until = parse_at(from_, "from"), parse_at(to, "to")

    def run() -> dict[str, Any]:
        from segflow.service.experiments import NoHoldout, experiment

        _get(ctx, segment_id)
        try:
            return experiment(ctx.app, segment_id, goal, since=since, until=until, mde=mde)
        except NoHoldout as e:
            raise ApiError(409, str(e)) from None
        except ValueError as e:
            raise ApiError(422, str(e)) from None

    return await ctx.run(run)


@router.get("/{segment_id}/changes", response_model=ChangesPage)
async def segment_changes(
    segment_id: str,
    ctx: Ctx,
    profile_id: str | None = None,
    entered: Annotated[bool | None, Query(description="only entries (true) or exits")] = None,
    since: Annotated[str | None, Query(description="changes at or after this instant")] = None,
    until: Annotated[str | None, Query(description="changes at or before this instant")] = None,
    after: Annotated[int | None, Query(ge=0, description="cursor: last seq read")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    """The membership change log of one segment, filterable, in seq order."""
    await ctx.run(_get, ctx, segment_id)
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


@router.get("/{segment_id}/versions", response_model=SegmentVersions)
async def segment_versions(segment_id: str, ctx: Ctx) -> Any:
    """Every saved version, newest first, with its definition (a deleted segment's
    too, so it can be restored)."""
    return {"versions": await ctx.run(segment_service.versions, ctx.app, segment_id)}


@router.post(
    "/{segment_id}/versions/{version}/restore",
    response_model=SaveResult,
    response_model_exclude_none=True,
)
async def restore_version(
    segment_id: str, version: Annotated[int, PathParam(ge=1)], ctx: Ctx
) -> Any:
    """Save the definition of ``version`` again as a new version (the answer of PUT,
    with the enter/exit diff it applied); a deleted segment comes back (status
    ``created``)."""

    def load() -> tuple[dict[str, Any], bool]:
        doc = segment_service.version_document(ctx.app, segment_id, version)
        return doc, ctx.app.registry.get(segment_id) is None

    doc, gone = await ctx.run(load)
    return await _save_request(ctx, doc, create=gone, dry_run=False)


@router.get("/{segment_id}/daily", response_model=SegmentDaily)
async def segment_daily(
    segment_id: str,
    ctx: Ctx,
    days: Annotated[
        int, Query(ge=1, le=overview.MAX_DAYS, description="how many UTC days, up to today")
    ] = 30,
) -> Any:
    """Day by day (UTC): the size at each day's end (today: now; from the change log,
    else batch evaluations; null before the segment's history) and the day's entries
    and exits."""

    def run() -> dict[str, Any]:
        _get(ctx, segment_id)
        return overview.segment_daily(ctx.app, ctx.live, segment_id, ctx.clock.now(), days)

    return await ctx.run(run)


@router.get("/{segment_id}/sizes", response_model=SizeHistory)
async def segment_sizes(segment_id: str, ctx: Ctx) -> Any:
    """Size over time: each batch evaluation, then the running size from the change log."""

    def run() -> dict[str, Any]:
        _get(ctx, segment_id)
        return {
            "segment_id": segment_id,
            "points": segment_service.size_history(ctx.app, segment_id),
        }

    return await ctx.run(run)


admin_only(router)
