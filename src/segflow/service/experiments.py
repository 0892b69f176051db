"""Experiment reports: a segment's treatment (members activated) against its holdout
(members kept out) on a goal metric over a period.

The cohort is everyone who was a member at some time in the period: the members at its
start (the batch evaluator as of ``since``) and those the change log shows entering
during it.  Each is measured from when it entered (orders after the entry, within the
period) and is held out or not by the holdout of the segment's version it entered
under, which is how activation treated it then.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from segflow.store.records.experiments import ArmOutcome, CohortMember

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
    built = cohort(app, segment_id, p)
    treatment, holdout = app.stores.experiments().outcomes(built.members, p.until)
    report = compare(goal, treatment, holdout, level=level, power=power)
    return {
        "segment_id": segment_id,
        "version": seg.version,
        "goal": goal,
        "from": format_instant(p.since),
        "to": format_instant(p.until),
        "holdout": seg.holdout.canonical(),
        "cohort": len(built.members),
        "at_start": built.at_start,
        "joiners": built.joiners,
        "without_holdout": built.without_holdout,
        "holdouts": {str(v): h for v, h in sorted(built.holdouts.items())},
        "report": report.as_dict(),
        "mde": mde_sample_size(goal, mde, holdout, seg.holdout.percent, level, power)
        if mde is not None
        else None,
    }


@dataclass(frozen=True, slots=True)
class Cohort:
    """Who an experiment report measures, each from its entry, with its arm."""

    members: list[CohortMember]
    at_start: int
    """Members at the period's start (in the report or not)."""
    joiners: int
    """Profiles that entered during the period, not members at its start."""
    without_holdout: int
    """Left out: they entered under a version with no holdout (nobody was held out)."""
    holdouts: dict[int, dict[str, object] | None]
    """The holdout of each version that members entered under."""


def in_force(saved: Mapping[int, datetime], at: datetime) -> int:
    """The version in force at ``at``: the latest saved at or before it (the first,
    before any was saved)."""
    before = [v for v, t in saved.items() if t <= at]
    return max(before) if before else min(saved)


def cohort(app: Segflow, segment_id: str, p: Period) -> Cohort:
    """Everyone who was a member at some time in the period: the members at its start
    (the batch evaluator as of ``since``), measured from ``since``, and the profiles the
    change log shows entering during it, each measured from its first entry then.  Each
    is assigned to an arm by the holdout of the version it entered under: the log's
    version of its entry (for a member at the start, its latest entry by then), else the
    version in force at the start."""
    versions = app.registry.saved_versions(segment_id)
    holdout = {v: seg.holdout for v, (seg, _) in versions.items()}
    start_version = in_force({v: t for v, (_, t) in versions.items()}, p.since)
    reads = app.stores.experiments()
    at_start = app.members(segment_id, p.since)
    logged = reads.entry_versions(segment_id, p.since)
    entries: list[tuple[str, datetime, bool, int]] = [
        (pid, p.since, False, logged.get(pid, start_version)) for pid in at_start
    ]
    known = set(at_start)
    joined = [j for j in reads.joiners(segment_id, p.since, p.until) if j[0] not in known]
    entries += [(pid, at, True, version) for pid, at, version in joined]
    members: list[CohortMember] = []
    used: dict[int, dict[str, object] | None] = {}
    without = 0
    for pid, at, strict, version in entries:
        h = holdout.get(version)
        used[version] = h.canonical() if h is not None else None
        if h is None:
            without += 1
            continue
        members.append(CohortMember(pid, h.holds_out(pid), at, strict))
    return Cohort(members, len(at_start), len(joined), without, used)


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
