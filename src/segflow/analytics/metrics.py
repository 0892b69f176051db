"""What each segment is worth over a period, compared with everyone.

The caller hands one aggregate per profile of the whole base (orders and revenue in the
period, and optionally sessions, page views, email counts, scores) and the membership
matrix (profiles x segments).  Every sum over members is one matrix product, so many
segments cost about what one does.  A metric whose denominator is zero (an empty
segment, no orders, no delivered email) is ``None``, never NaN, and so is an index
whose base is zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from segflow.analytics.plain import finite, plain

BoolA: TypeAlias = npt.NDArray[np.bool_]
IntA: TypeAlias = npt.NDArray[np.int64]
FloatA: TypeAlias = npt.NDArray[np.float64]

ROWS_PER_PRODUCT: Final = 1 << 16
"""Profiles per block of the membership product: bounds its float copy."""


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` when the denominator is zero."""
    return finite(numerator / denominator) if denominator else None


def index(value: float | None, base: float | None) -> float | None:
    """The segment's value over everyone's (1 means "like everyone"); ``None`` when
    either is undefined or everyone's is zero."""
    if value is None or base is None or base == 0:
        return None
    return finite(value / base)


@dataclass(frozen=True, slots=True)
class Compared:
    """A segment's value, everyone's, and their index."""

    value: float | None
    base: float | None
    index: float | None

    @classmethod
    def of(cls, value: float | None, base: float | None) -> Compared:
        return cls(value, base, index(value, base))


@dataclass(frozen=True, eq=False)
class MemberAggregates:
    """One entry per profile of the whole base, in the same order as the membership rows.
    Scores are NaN for a profile without one."""

    orders: npt.ArrayLike
    revenue: npt.ArrayLike
    sessions: npt.ArrayLike | None = None
    page_views: npt.ArrayLike | None = None
    emails_delivered: npt.ArrayLike | None = None
    emails_opened: npt.ArrayLike | None = None
    emails_clicked: npt.ArrayLike | None = None
    clv: npt.ArrayLike | None = None
    churn_risk: npt.ArrayLike | None = None


@dataclass(frozen=True, slots=True)
class SegmentMetrics:
    """One segment's metrics (``segment`` is ``None`` for everyone); optional ones are
    ``None`` when their aggregates were not given."""

    segment: str | None
    size: int
    share: float | None
    orders: int
    revenue: float
    buyers: int
    repeat_buyers: int
    conversion_rate: Compared
    repeat_purchase_rate: Compared
    aov: Compared
    revenue_per_member: Compared
    orders_per_member: Compared
    sessions_per_member: Compared | None
    page_views_per_member: Compared | None
    open_rate: Compared | None
    click_rate: Compared | None
    average_clv: Compared | None
    average_churn_risk: Compared | None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out


@dataclass(frozen=True, slots=True)
class MetricsReport:
    n_profiles: int
    everyone: SegmentMetrics
    segments: tuple[SegmentMetrics, ...]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out


@dataclass(frozen=True, eq=False)
class Growth:
    """Size per period from the size at the start and the entries and exits of each."""

    size_start: IntA
    entered: IntA
    exited: IntA
    net: IntA
    size_end: IntA
    growth_rate: FloatA
    """``net / size_start``; NaN (``None`` in ``as_dict``) when the period starts empty."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = plain(self)
        return out


def segment_metrics(
    members: npt.ArrayLike, segments: Sequence[str], aggregates: MemberAggregates
) -> MetricsReport:
    """Metrics of each segment (a column of ``members``) and of everyone."""
    m = np.asarray(members, dtype=np.bool_)
    if m.ndim != 2 or m.shape[1] != len(segments):
        raise ValueError(f"members must be profiles x {len(segments)} segments, got {m.shape}")
    n = m.shape[0]
    columns = _columns(aggregates, n)
    x = np.column_stack(list(columns.values())) if n else np.zeros((0, len(columns)))
    # everyone is one more column of the same product: a segment holding everyone then
    # sums in the same order and gets exactly everyone's values
    sums = _member_sums(np.column_stack([m, np.ones(n, np.bool_)]), x)
    names = list(columns)
    base_row = dict(zip(names, sums[-1].tolist(), strict=True))
    everyone = _metrics(None, n, base_row, None)
    per_segment = tuple(
        _metrics(seg, n, dict(zip(names, sums[j].tolist(), strict=True)), everyone)
        for j, seg in enumerate(segments)
    )
    return MetricsReport(n, everyone, per_segment)


def net_growth(size_start: int, entered: npt.ArrayLike, exited: npt.ArrayLike) -> Growth:
    """Sizes over consecutive periods: each ends at its start plus entries minus exits,
    and the next starts where it ended."""
    ins = np.asarray(entered, dtype=np.int64).ravel()
    outs = np.asarray(exited, dtype=np.int64).ravel()
    if ins.shape != outs.shape or size_start < 0 or (ins < 0).any() or (outs < 0).any():
        raise ValueError("entries and exits are counts for the same periods")
    net = ins - outs
    end = size_start + np.cumsum(net)
    start = np.concatenate([[size_start], end[:-1]])[: len(net)].astype(np.int64)
    if (end < 0).any():
        raise ValueError("more exits than members: the counts do not add up")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = net / start
    return Growth(start, ins, outs, net, end.astype(np.int64), rate)


def _columns(a: MemberAggregates, n: int) -> dict[str, FloatA]:
    def col(values: npt.ArrayLike, name: str, *, scores: bool = False) -> FloatA:
        v = np.asarray(values, dtype=np.float64).ravel()
        if v.shape != (n,):
            raise ValueError(f"{name} must have one entry per profile ({n}), got {v.shape}")
        if not (np.isfinite(v) | (scores & np.isnan(v))).all():
            raise ValueError(f"{name} must be finite numbers")
        return v

    orders = col(a.orders, "orders")
    out = {
        "members": np.ones(n),
        "orders": orders,
        "revenue": col(a.revenue, "revenue"),
        "buyers": (orders > 0).astype(np.float64),
        "repeat_buyers": (orders >= 2).astype(np.float64),
    }
    for name in ("sessions", "page_views", "emails_delivered", "emails_opened", "emails_clicked"):
        values = getattr(a, name)
        if values is not None:
            out[name] = col(values, name)
    for name in ("clv", "churn_risk"):
        values = getattr(a, name)
        if values is not None:
            v = col(values, name, scores=True)
            scored = ~np.isnan(v)
            out[name] = np.where(scored, v, 0.0)
            out[f"{name}_scored"] = scored.astype(np.float64)
    return out


def _member_sums(m: BoolA, x: FloatA) -> FloatA:
    """``m.T @ x`` (segments x columns) in blocks of profiles."""
    out = np.zeros((m.shape[1], x.shape[1]))
    for start in range(0, m.shape[0], ROWS_PER_PRODUCT):
        block = m[start : start + ROWS_PER_PRODUCT]
        out += block.T.astype(np.float64) @ x[start : start + ROWS_PER_PRODUCT]
    return out


def _metrics(
    segment: str | None, n: int, s: dict[str, float], everyone: SegmentMetrics | None
) -> SegmentMetrics:
    def compared(value: float | None, field: str) -> Compared:
        base = None if everyone is None else getattr(everyone, field)
        return Compared.of(value, base.value if isinstance(base, Compared) else value)

    def optional(num: str, den: str | None, field: str) -> Compared | None:
        if num not in s or (den is not None and den not in s):
            return None
        return compared(ratio(s[num], s[den] if den else size), field)

    size, orders, revenue, buyers = round(s["members"]), s["orders"], s["revenue"], s["buyers"]
    return SegmentMetrics(
        segment=segment,
        size=size,
        share=ratio(size, n),
        orders=round(orders),
        revenue=revenue,
        buyers=round(buyers),
        repeat_buyers=round(s["repeat_buyers"]),
        conversion_rate=compared(ratio(buyers, size), "conversion_rate"),
        repeat_purchase_rate=compared(ratio(s["repeat_buyers"], buyers), "repeat_purchase_rate"),
        aov=compared(ratio(revenue, orders), "aov"),
        revenue_per_member=compared(ratio(revenue, size), "revenue_per_member"),
        orders_per_member=compared(ratio(orders, size), "orders_per_member"),
        sessions_per_member=optional("sessions", None, "sessions_per_member"),
        page_views_per_member=optional("page_views", None, "page_views_per_member"),
        open_rate=optional("emails_opened", "emails_delivered", "open_rate"),
        click_rate=optional("emails_clicked", "emails_delivered", "click_rate"),
        average_clv=optional("clv", "clv_scored", "average_clv"),
        average_churn_risk=optional("churn_risk", "churn_risk_scored", "average_churn_risk"),
    )
