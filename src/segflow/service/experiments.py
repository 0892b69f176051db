"""Experiment reports: a segment's treatment (members activated) against its holdout
(members kept out) on a goal metric over a period.

The cohort is the segment's members at the start of the period (the batch evaluator as
of ``since``): who was in the audience when the period began, before any outcome of the
period could move them.  The holdout is drawn from the cohort by the segment's
``holdout`` block; outcomes are each member's orders in the period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from segflow.analytics.experiments import (
    ExperimentReport,
    MeanStats,
    Proportion,
    SampleSize,
    compare_mean_stats,
    compare_rates,
    sample_size_means,
    sample_size_rates,
)
from segflow.model.time import format_instant, utcnow
from segflow.store.duckdb.experiments import ArmOutcome

if TYPE_CHECKING:
    from segflow.service.handle import Segflow

Goal: TypeAlias = Literal["conversion", "revenue_per_member", "orders_per_member"]
GOALS: Final[tuple[Goal, ...]] = ("conversion", "revenue_per_member", "orders_per_member")
DEFAULT_DAYS: Final = 30


class NoHoldout(ValueError):
    """The segment has no holdout, so there is nothing to compare."""


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime
    until: datetime


def period(app: Segflow, segment_id: str, since: datetime | None, until: datetime | None) -> Period:
    """The report's period: ``until`` defaults to now; ``since`` to when the segment's
    current version was saved, or ``DEFAULT_DAYS`` before ``until`` when that is not
    earlier than ``until``.  Raise ValueError for a period in the future or backwards."""
    now = utcnow()
    end = until or now
    if end > now:
        raise ValueError(f"the period ends in the future ({format_instant(end)})")
    if since is None:
        saved = [t for v, t, deleted in app.registry.history(segment_id) if not deleted]
        since = saved[-1] if saved and saved[-1] < end else end - timedelta(days=DEFAULT_DAYS)
    if since >= end:
        raise ValueError(
            f"the period must start before it ends ({format_instant(since)} is not before"
            f" {format_instant(end)})"
        )
    return Period(since, end)


def experiment(
    app: Segflow,
    segment_id: str,
    goal: Goal = "conversion",
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    mde: float | None = None,
    level: float = 0.95,
    power: float = 0.8,
) -> dict[str, Any]:
    """Treatment vs holdout on ``goal`` over the period; with ``mde`` (an absolute
    effect: a rate difference for conversion, a difference of means otherwise) also the
    members each arm needs to detect it.  KeyError for an unknown segment, NoHoldout
    when it has no holdout, ValueError for a bad goal or period."""
    if goal not in GOALS:
        raise ValueError(f"unknown goal {goal!r} (one of: {', '.join(GOALS)})")
    if mde is not None and not mde > 0:
        raise ValueError(f"mde must be a positive effect, got {mde}")
    seg = app.segment(segment_id)
    if seg.holdout is None:
        raise NoHoldout(
            f"segment {segment_id!r} has no holdout: add a holdout block"
            " (holdout: {percent: 10}) to compare its members with a held-out share"
        )
    p = period(app, segment_id, since, until)
    cohort = app.members(segment_id, p.since)
    held = seg.holdout.held_out(cohort)
    treatment, holdout = app.stores.experiments().outcomes(cohort, held, p.since, p.until)
    report = compare(goal, treatment, holdout, level=level, power=power)
    return {
        "segment_id": segment_id,
        "version": seg.version,
        "goal": goal,
        "from": format_instant(p.since),
        "to": format_instant(p.until),
        "holdout": seg.holdout.canonical(),
        "cohort": len(cohort),
        "report": report.as_dict(),
        "mde": mde_sample_size(goal, mde, holdout, seg.holdout.percent, level, power)
        if mde is not None
        else None,
    }


def compare(
    goal: Goal, treatment: ArmOutcome, holdout: ArmOutcome, *, level: float, power: float
) -> ExperimentReport:
    """The statistics of ``goal`` on the arms' outcomes."""
    if goal == "conversion":
        return compare_rates(
            Proportion(treatment.buyers, treatment.n),
            Proportion(holdout.buyers, holdout.n),
            level=level,
            power=power,
        )
    return compare_mean_stats(
        _stats(goal, treatment), _stats(goal, holdout), level=level, power=power
    )


def _stats(goal: Goal, arm: ArmOutcome) -> MeanStats:
    if goal == "revenue_per_member":
        return MeanStats(arm.n, arm.revenue_mean, arm.revenue_sd)
    return MeanStats(arm.n, arm.orders_mean, arm.orders_sd)


def mde_sample_size(
    goal: Goal, mde: float, holdout: ArmOutcome, percent: float, level: float, power: float
) -> dict[str, Any]:
    """Members per arm to detect ``mde`` at the holdout's observed baseline (rate, or
    standard deviation for a mean), at the holdout's designed share of the members."""
    ratio = (100 - percent) / percent
    need: SampleSize | None = None
    reason: str | None = None
    try:
        if goal == "conversion":
            base = holdout.buyers / holdout.n if holdout.n else None
            if base is None:
                reason = "the holdout has no members: no baseline rate"
            else:
                need = sample_size_rates(base, mde, alpha=1 - level, power=power, ratio=ratio)
        else:
            sd = _stats(goal, holdout).sd
            if not sd > 0:
                reason = "the holdout's values do not vary: no baseline spread"
            else:
                need = sample_size_means(sd, mde, alpha=1 - level, power=power, ratio=ratio)
    except ValueError as e:
        reason = str(e)
    return {
        "effect": mde,
        "treatment": need.treatment if need else None,
        "holdout": need.holdout if need else None,
        "total": need.total if need else None,
        "reason": reason,
    }
