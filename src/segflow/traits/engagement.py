"""Engagement score, purchase-frequency bands, loyalty tiers and lifecycle stages.

Pure functions of per-customer arrays (the feature query in ``refresh`` computes the
inputs), so every definition here is testable by hand and documented in one place.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt

FloatA: TypeAlias = npt.NDArray[np.float64]
IntA: TypeAlias = npt.NDArray[np.int64]

BANDS: Final = ("0-1", "2-4", "5+")
TIERS: Final = ("Bronze", "Silver", "Gold")
STAGES: Final = ("new", "lapsed", "at_risk", "loyal", "rising_star", "active")


@dataclass(frozen=True, slots=True)
class EngagementConfig:
    """Weights (any non-negative numbers; they are normalised to sum 1) and the number of
    visit days in the window that counts as fully engaged."""

    open_weight: float = 0.5
    click_weight: float = 0.3
    visit_weight: float = 0.2
    window_days: int = 90
    visit_days_cap: float = 12.0

    def __post_init__(self) -> None:
        ws = (self.open_weight, self.click_weight, self.visit_weight)
        if any(w < 0 for w in ws) or sum(ws) <= 0:
            raise ValueError(f"engagement weights must be >= 0 with a positive sum, got {ws}")
        if self.window_days < 1:
            raise ValueError(f"engagement window_days must be >= 1, got {self.window_days}")
        if self.visit_days_cap <= 0:
            raise ValueError(f"engagement visit_days_cap must be > 0, got {self.visit_days_cap}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TierConfig:
    """Loyalty tier from spend in the last ``window_days``: Gold >= gold, Silver >= silver,
    otherwise Bronze (customers without an order in the window get no tier)."""

    silver: float = 500.0
    gold: float = 2_000.0
    window_days: int = 365

    def __post_init__(self) -> None:
        if not 0 <= self.silver <= self.gold:
            raise ValueError(
                f"tier thresholds need 0 <= silver <= gold, got {self.silver}, {self.gold}"
            )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def engagement_score(
    opens: npt.ArrayLike,
    clicks: npt.ArrayLike,
    visit_days: npt.ArrayLike,
    campaigns_sent: int,
    config: EngagementConfig | None = None,
) -> tuple[FloatA, FloatA, FloatA]:
    """(score 0-100, open rate, click rate).

    open rate = campaigns opened / campaigns sent in the window (capped at 1; 0 when none
    was sent); click rate = campaigns clicked / campaigns opened (click-to-open, capped
    at 1; 0 without opens); visits = min(1, visit days / visit_days_cap).  The score is
    ``100 * (w_o * open + w_c * click + w_v * visits) / (w_o + w_c + w_v)``.
    """
    config = config or EngagementConfig()
    o = np.asarray(opens, dtype=np.float64)
    c = np.asarray(clicks, dtype=np.float64)
    v = np.asarray(visit_days, dtype=np.float64)
    open_rate = np.minimum(o / campaigns_sent, 1.0) if campaigns_sent > 0 else np.zeros_like(o)
    click_rate = np.where(o > 0, np.minimum(c / np.maximum(o, 1.0), 1.0), 0.0)
    visits = np.minimum(v / config.visit_days_cap, 1.0)
    wsum = config.open_weight + config.click_weight + config.visit_weight
    score = (
        100.0
        * (
            config.open_weight * open_rate
            + config.click_weight * click_rate
            + config.visit_weight * visits
        )
        / wsum
    )
    return score, open_rate, click_rate


def frequency_band(orders_6m: npt.ArrayLike) -> IntA:
    """Index into ``BANDS``: 0-1, 2-4 or 5+ orders in the last 182 days."""
    n = np.asarray(orders_6m, dtype=np.int64)
    out: IntA = np.where(n >= 5, 2, np.where(n >= 2, 1, 0))
    return out


def loyalty_tier(spend: npt.ArrayLike, config: TierConfig | None = None) -> IntA:
    """Index into ``TIERS`` of spend in the tier window (callers drop customers with no order)."""
    config = config or TierConfig()
    s = np.asarray(spend, dtype=np.float64)
    out: IntA = np.where(s >= config.gold, 2, np.where(s >= config.silver, 1, 0))
    return out


def lifecycle_stage(
    days_since_first: npt.ArrayLike,
    days_since_last: npt.ArrayLike,
    orders: npt.ArrayLike,
    orders_365d: npt.ArrayLike,
) -> IntA:
    """Index into ``STAGES``; the first rule that holds wins:

    new: first order <= 30 days ago; lapsed: last order > 180 days ago; at_risk: last
    order 61-180 days ago; loyal: >= 5 orders in 365 days; rising_star: first order
    <= 180 days ago and >= 2 orders; active: everyone else (last order <= 60 days ago).
    """
    first = np.asarray(days_since_first, dtype=np.float64)
    last = np.asarray(days_since_last, dtype=np.float64)
    n = np.asarray(orders, dtype=np.int64)
    n365 = np.asarray(orders_365d, dtype=np.int64)
    out: IntA = np.select(
        [
            first <= 30,
            last > 180,
            last > 60,
            n365 >= 5,
            (first <= 180) & (n >= 2),
        ],
        [0, 1, 2, 3, 4],
        default=5,
    ).astype(np.int64)
    return out
