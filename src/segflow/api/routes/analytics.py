"""Segment analytics API (admin key, like the segments' reads): metrics over a period,
overlap at an instant, transitions between two instants.

Thin routes over ``segflow.service.analytics``; each runs under the store lock in a
worker thread.  An unknown segment is a 404 naming it, a parameter that cannot be used
a 422 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Literal, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from segflow.analytics.overlap import Thresholds
from segflow.api.deps import Ctx, admin_key, admin_only, parse_at
from segflow.api.http import ApiError
from segflow.api.schemas import ErrorResponse
from segflow.service import analytics as service

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    s: {"model": ErrorResponse} for s in (401, 403, 404, 422)
}

router = APIRouter(
    prefix="/v1/analytics", tags=["analytics"], dependencies=[Depends(admin_key)], responses=ERRORS
)

SegmentsQuery = Annotated[
    list[str] | None,
    Query(alias="segment", description="a segment id; repeat for several (default: every one)"),
]
FromQuery = Annotated[
    str | None,
    Query(alias="from", description="ISO 8601 start of the period (default: 30 days before to)"),
]
ToQuery = Annotated[
    str | None,
    Query(alias="to", description="ISO 8601 end of the period, not in the future (default: now)"),
]

T = TypeVar("T")


# -- response models -------------------------------------------------------------------


class Compared(BaseModel):
    value: float | None = Field(description="the segment's value (null: undefined)")
    base: float | None = Field(description="everyone's value")
    index: float | None = Field(description="value / base (1: like everyone)")


class SegmentMetrics(BaseModel):
    """Metrics of one segment (``segment`` null: everyone); see docs/analytics.md."""

    segment: str | None
    size: int
    share: float | None = Field(description="size / profiles in the base")
    orders: int
    revenue: float
    buyers: int = Field(description="members with an order in the period")
    repeat_buyers: int = Field(description="members with two orders or more")
    conversion_rate: Compared
    repeat_purchase_rate: Compared
    aov: Compared
    revenue_per_member: Compared
    orders_per_member: Compared
    sessions_per_member: Compared | None
    page_views_per_member: Compared | None = Field(description="null: no page calls stored")
    open_rate: Compared | None = Field(description="null: no Email Delivered events stored")
    click_rate: Compared | None
    average_clv: Compared | None = Field(description="null: no clv_12m scores stored")
    average_churn_risk: Compared | None


class SeriesPoint(BaseModel):
    start: str
    end: str
    size: int | None = Field(description="size at the bucket's end (null: unknown)")
    entered: int | None
    exited: int | None
    net: int | None
    growth_rate: float | None = Field(description="net / size at the bucket's start")


class SegmentMetricsOverTime(SegmentMetrics):
    entered: int | None = Field(description="entries in the period (null: not in the log)")
    exited: int | None
    net_growth: int | None
    series_source: Literal["changes", "evaluation"]
    series: list[SeriesPoint]


class MetricsReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    bucket: Literal["day", "week"]
    n_profiles: int
    everyone: SegmentMetrics
    segments: list[SegmentMetricsOverTime]


class OverlapWarning(BaseModel):
    kind: Literal["contained", "near_duplicate", "too_small"]
    segments: list[str]
    value: float
    threshold: float
    message: str


class Combination(BaseModel):
    segments: list[str]
    count: int


class OverlapReport(BaseModel):
    """Matrices are indexed like ``segments``."""

    at: str
    segments: list[str]
    n_profiles: int
    sizes: list[int]
    intersections: list[list[int]]
    row_share: list[list[float | None]] = Field(description="|A ∩ B| / |A| (row A)")
    jaccard: list[list[float | None]]
    exclusive: list[int] = Field(description="members in no other of the segments")
    in_any: int
    distinct_combinations: int
    top_combinations: list[Combination]
    warnings: list[OverlapWarning]


class Flow(BaseModel):
    source: str | None = Field(description="null: outside the group")
    target: str | None
    value: int


class TimeToEnter(BaseModel):
    source: str
    target: str
    pairs: int = Field(description="profiles that entered both, target not before source")
    b_before_a: int
    median: float | None = Field(description="microseconds")
    mean: float | None
    percentiles: dict[str, float | None]


class TransitionMatrix(BaseModel):
    """Rows (places at ``from``) and columns (places at ``to``): ``stages``, then
    outside the group."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    stages: list[str]
    counts: list[list[int]]
    row_share: list[list[float | None]]
    at_a: list[int]
    at_b: list[int]
    stayed: int
    forward: int
    backward: int
    entered: int
    exited: int
    flows: list[Flow]


class InstantSource(BaseModel):
    at: str
    changes: list[str] = Field(description="stages whose members came from the change log")
    evaluation: list[str] = Field(description="stages evaluated as of the instant")


class TransitionsReport(TransitionMatrix):
    """The matrix from ``from`` to ``to``; with ``every``, one per consecutive bucket."""

    time_to_enter: list[TimeToEnter] = Field(description="for each stage and the next")
    every: Literal["day", "week"] | None
    periods: list[TransitionMatrix] | None = Field(
        description="with every: one matrix per bucket counted from `from`"
    )
    sources: list[InstantSource] = Field(description="where each instant's members came from")


# -- routes ----------------------------------------------------------------------------


def _answer(fn: Callable[[], T]) -> T:
    """``fn()`` with the service's refusals as API errors."""
    try:
        return fn()
    except KeyError as e:
        raise ApiError(404, str(e.args[0])) from None
    except service.BadRequest as e:
        message = f"invalid request: {e.param}: {e.reason}"
        raise ApiError(422, message, [{"path": e.param, "message": e.reason}]) from None


@router.get("/metrics", response_model=MetricsReport)
async def metrics(
    ctx: Ctx,
    segment: SegmentsQuery = None,
    start: FromQuery = None,
    end: ToQuery = None,
    bucket: Annotated[
        Literal["day", "week"], Query(description="time series buckets, from the period start")
    ] = "day",
) -> Any:
    """Each segment's size, share, entries and exits, orders, revenue, AOV, conversion,
    repeat purchases, engagement, email rates and scores over the period (members as of
    its end), with everyone's values and the index, and a time series per bucket."""
    first, last = parse_at(start, "from"), parse_at(end, "to")
    now = ctx.clock.now()

    def run() -> dict[str, Any]:
        return _answer(
            lambda: service.metrics(ctx.app, segment, first, last, bucket=bucket, now=now)
        )

    return await ctx.run(run)


@router.get("/overlap", response_model=OverlapReport)
async def overlap(
    ctx: Ctx,
    segment: SegmentsQuery = None,
    at: Annotated[
        str | None, Query(description="ISO 8601 instant to evaluate as of (default: now)")
    ] = None,
    top: Annotated[int, Query(ge=0, le=1000, description="combinations listed")] = 10,
    contained: Annotated[
        float, Query(ge=0, le=1, description="warn when more of a segment is in another")
    ] = 0.9,
    near_duplicate: Annotated[
        float, Query(ge=0, le=1, description="warn from this Jaccard index")
    ] = 0.9,
    min_size: Annotated[
        int, Query(ge=0, le=10**12, description="warn below this many members")
    ] = 100,
) -> Any:
    """Pairwise intersections (counts, % of row, Jaccard), exclusive counts, the top
    combinations and over-segmentation warnings of the segments as of ``at``."""
    when = parse_at(at) or ctx.clock.now()
    limits = Thresholds(contained=contained, near_duplicate=near_duplicate, min_size=min_size)

    def run() -> dict[str, Any]:
        return _answer(
            lambda: service.overlap_report(ctx.app, segment, when, top=top, thresholds=limits),
        )

    return await ctx.run(run)


@router.get("/transitions", response_model=TransitionsReport)
async def transitions(
    ctx: Ctx,
    segment: Annotated[
        list[str], Query(description="the group's segments in order; repeat the parameter")
    ],
    start: Annotated[
        str | None,
        Query(alias="from", description="ISO 8601 instant A (default: 30 days before to)"),
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", description="ISO 8601 instant B, not in the future")
    ] = None,
    every: Annotated[
        Literal["day", "week"] | None,
        Query(description="also one matrix per consecutive day or week from `from`"),
    ] = None,
    source: Annotated[
        Literal["auto", "changes", "evaluation"],
        Query(
            description="members of past instants: the change log where it covers them, else"
            " evaluation (auto); or only one of the two"
        ),
    ] = "auto",
) -> Any:
    """How many profiles moved from each stage of the ordered group at ``from`` to each
    at ``to`` (outside the group last), the Sankey flows, with ``every`` the same per
    day or week, and from the change log the time from entering each stage to entering
    the next."""
    first, last = parse_at(start, "from"), parse_at(end, "to")
    now = ctx.clock.now()

    def run() -> dict[str, Any]:
        return _answer(
            lambda: service.transitions_report(
                ctx.app, segment, first, last, every=every, source=source, now=now
            )
        )

    return await ctx.run(run)


admin_only(router)
