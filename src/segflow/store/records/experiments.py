"""An experiment report's records as stores hand them out: one arm's outcomes and one
cohort member."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final


@dataclass(frozen=True, slots=True)
class ArmOutcome:
    """One arm's members and their outcomes over the period: ``buyers`` had at least
    one order; means and sample standard deviations (n - 1) are per member, a member
    without orders counting as 0."""

    n: int
    buyers: int
    orders_mean: float
    orders_sd: float
    revenue_mean: float
    revenue_sd: float


EMPTY: Final = ArmOutcome(0, 0, 0.0, 0.0, 0.0, 0.0)
"""An arm without members."""


@dataclass(frozen=True, slots=True)
class CohortMember:
    """One member of an experiment's cohort: measured from ``entered`` (a joiner's
    orders at that very instant, which made it enter, are left out: ``strict``)."""

    profile_id: str
    held_out: bool
    entered: datetime
    strict: bool
