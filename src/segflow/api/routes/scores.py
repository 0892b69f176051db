"""Scores API (admin key): refresh the value scores and predictions, inspect the fitted
models and the population, read one profile's scores, and discover segments.

Thin routes over the service functions (``segflow.service.scores.refresh_scores``,
``scores_models``, ``scores_summary``, ``scores_for``, ``discover_segments``); every
call runs under the store lock in a worker thread.  The server also refreshes the
scores on the ``Settings.scores_cron`` schedule (see ``segflow.api.app``); either way the
live evaluator catches up right after (``refresh_live``), so live members of segments on
score traits change with the refresh.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from segflow.api.deps import Ctx, ServerContext, admin_key, admin_only, parse_at
from segflow.api.http import ApiError
from segflow.api.schemas import ErrorResponse, SegmentDefinition
from segflow.service import profiles
from segflow.service import scores as score_service

if TYPE_CHECKING:
    from segflow.traits.refresh import ScoresConfig, ScoresReport

log = logging.getLogger("segflow.server")

ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    s: {"model": ErrorResponse} for s in (401, 403, 404, 422)
}

router = APIRouter(tags=["scores"], dependencies=[Depends(admin_key)], responses=ERRORS)
AtQuery = Annotated[
    str | None,
    Query(description="ISO 8601 instant to compute / read the scores as of (default: now)"),
]


def _at(value: str | None) -> datetime | None:
    """``at`` as a naive UTC instant; malformed or out of range -> 422."""
    return parse_at(value)


def refresh_live(
    ctx: ServerContext, at: datetime, config: ScoresConfig | None = None
) -> ScoresReport:
    """Refresh the scores as of ``at`` and feed the new score traits to the live
    evaluator (its changes are logged with reason ``trait_changed``); call under the
    store lock.  A failing catch-up is logged: the scores are stored, and the next one
    (after any group commit) picks them up."""
    report = score_service.refresh_scores(ctx.app, at, config)
    if ctx.live is not None:
        try:
            ctx.live.catch_up()
        except Exception:
            log.exception("live evaluation after the scores refresh failed")
    return report


# -- response models -------------------------------------------------------------------


class FitQuality(BaseModel):
    log_likelihood: float
    n: int = Field(description="customers (or repeat buyers, for Gamma-Gamma) fitted")
    iterations: int
    seconds: float
    converged: bool


class ModelFitOut(BaseModel):
    params: dict[str, float] = Field(
        description="BG/NBD: r, alpha (days), a, b; Gamma-Gamma: p, q, v"
    )
    fit: FitQuality


class ClassifierQuality(BaseModel):
    horizon_days: int
    n_train: int
    n_test: int
    positive_rate_test: float
    auc: float = Field(description="time-split holdout AUC of the classifier")
    baseline_auc_p_alive: float
    baseline_auc_expected_orders: float


class ScoresReportOut(BaseModel):
    """What a refresh did (the same document ``segflow scores refresh`` prints)."""

    as_of: datetime = Field(description="the instant the scores describe")
    computed_at: datetime = Field(description="wall-clock time of the refresh")
    profiles: int = Field(description="profiles scored (customers and engaged visitors)")
    customers: int = Field(description="profiles with at least one order")
    traits_written: int
    traits_cleared: int
    bgnbd: ModelFitOut | None = None
    gamma_gamma: ModelFitOut | None = None
    models_note: str = ""
    classifier: ClassifierQuality | None = None
    classifier_note: str = ""
    seconds: dict[str, float] = Field(description="time per step and in total")
    config: dict[str, Any] = Field(description="the ScoresConfig the refresh ran with")


class ScoresSummary(BaseModel):
    """Profiles per value of each categorical score trait (current values)."""

    rfm_group: dict[str, int] = {}
    lifecycle_stage: dict[str, int] = {}
    loyalty_tier: dict[str, int] = {}
    purchase_frequency_band: dict[str, int] = {}


class ProfileScores(BaseModel):
    profile_id: str
    at: datetime | None = Field(None, description="as of this instant (null: latest)")
    scores: dict[str, float | str] = Field(
        description="score traits: rfm_*, engagement_score, loyalty_tier, lifecycle_stage, "
        "p_alive, churn_risk, expected_orders_30d/90d, clv_12m, purchase_propensity_90d, ..."
    )


class DiscoveredSegment(BaseModel):
    cluster: int
    size: int = Field(description="customers in the cluster")
    rule_size: int = Field(description="customers the proposed rule selects")
    precision: float = Field(description="share of the rule's members that are in the cluster")
    recall: float = Field(description="share of the cluster the rule selects")
    centroid: dict[str, float] = Field(description="mean score traits of the cluster")
    segment: SegmentDefinition = Field(
        description="the proposed definition: a valid body for POST /v1/segments"
    )


class DiscoverResult(BaseModel):
    at: datetime | None = None
    k: int
    depth: int
    proposals: list[DiscoveredSegment]


# -- routes ----------------------------------------------------------------------------


@router.post("/v1/scores/refresh", response_model=ScoresReportOut)
async def refresh(
    ctx: Ctx,
    at: AtQuery = None,
    classifier: Annotated[
        bool, Query(description="also train and score the purchase-propensity classifier")
    ] = True,
) -> dict[str, Any]:
    """Recompute every value score and prediction as of ``at`` (default now) and store
    them as traits (history kept); returns the report: population, model parameters,
    fit quality, classifier AUC, timings."""
    from segflow.traits.refresh import ScoresConfig

    when = _at(at) or ctx.clock.now()
    report = await ctx.run(refresh_live, ctx, when, ScoresConfig(classifier=classifier))
    return report.as_dict()


@router.get("/v1/scores/models", response_model=ScoresReportOut)
async def models(ctx: Ctx) -> dict[str, Any]:
    """Parameters and fit quality of the latest refresh (404 before the first)."""
    run = await ctx.run(score_service.scores_models, ctx.app)
    if run is None:
        raise ApiError(404, "no scores yet: refresh them first (POST /v1/scores/refresh)")
    return run


@router.get("/v1/scores/summary", response_model=ScoresSummary)
async def summary(ctx: Ctx) -> dict[str, Any]:
    """How many profiles are in each RFM group, lifecycle stage, loyalty tier and
    purchase-frequency band (empty before the first refresh)."""
    return await ctx.run(score_service.scores_summary, ctx.app)


@router.post("/v1/scores/discover", response_model=DiscoverResult, response_model_exclude_none=True)
async def discover(
    ctx: Ctx,
    k: Annotated[int, Query(ge=2, le=50, description="number of clusters")] = 5,
    depth: Annotated[int, Query(ge=1, le=8, description="depth of each rule's tree")] = 3,
    at: AtQuery = None,
) -> dict[str, Any]:
    """Cluster scored customers (k-means on their scores) and propose each cluster as a
    readable segment definition, with the rule's size, precision and recall against the
    cluster.  Nothing is saved: POST a proposal's ``segment`` to /v1/segments to keep it."""
    when = _at(at)
    try:
        found = await ctx.run(score_service.discover_segments, ctx.app, k=k, depth=depth, at=when)
    except ValueError as e:  # too few scored customers for k
        raise ApiError(422, f"cannot discover segments: {e}") from None
    return {"at": when, "k": k, "depth": depth, "proposals": [p.as_dict() for p in found]}


@router.get("/v1/profiles/{profile_id}/scores", response_model=ProfileScores, tags=["profiles"])
async def profile_scores(profile_id: str, ctx: Ctx, at: AtQuery = None) -> dict[str, Any]:
    """One profile's score traits as of ``at`` (default: the latest refresh); any of its
    user/anonymous ids finds it.  404 for an unknown profile or one with no scores."""
    when = _at(at)

    def run() -> dict[str, Any]:
        pid = profiles.resolve(ctx.app, profile_id)
        if pid is None:
            raise ApiError(404, f"unknown profile {profile_id!r}")
        try:
            scores = score_service.scores_for(ctx.app, pid, when)
        except KeyError:
            raise ApiError(
                404, f"profile {pid!r} has no scores (refresh them: POST /v1/scores/refresh)"
            ) from None
        return {"profile_id": pid, "at": when, "scores": scores}

    return await ctx.run(run)


admin_only(router)
