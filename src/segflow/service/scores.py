"""Value scores and predictions as the service offers them: refresh, schedule, read."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from segflow.model import schedule
from segflow.model.time import utcnow

if TYPE_CHECKING:
    from segflow.service.handle import Segflow
    from segflow.traits.discovery import Proposal
    from segflow.traits.refresh import ScoresConfig, ScoresReport


def refresh_scores(
    app: Segflow, at: datetime | None = None, config: ScoresConfig | None = None
) -> ScoresReport:
    """Refresh every value score and prediction as of ``at`` (default now) as traits.

    The hook a scheduler calls; it appends to the traits history, never rewrites it.
    """
    from segflow.traits.refresh import ScoresConfig
    from segflow.traits.refresh import refresh_scores as refresh

    return refresh(app.score_store, at or utcnow(), config or ScoresConfig())


def scores_due(app: Segflow, now: datetime, cron: str) -> bool:
    """Whether a scheduled scores refresh is due: never run yet, or the cron schedule
    fired between the latest refresh and ``now``."""
    from segflow.traits.refresh import latest_run

    last = latest_run(app.score_store)
    if last is None:
        return True
    previous = datetime.fromisoformat(str(last["computed_at"])).replace(tzinfo=None)
    return schedule.fired_between(cron, previous, now.replace(tzinfo=None))


def scores_models(app: Segflow) -> dict[str, Any] | None:
    """Parameters and fit quality of the latest refresh (None before the first)."""
    from segflow.traits.refresh import latest_run

    return latest_run(app.score_store)


def scores_for(app: Segflow, profile_id: str, at: datetime | None = None) -> dict[str, Any]:
    """One profile's score traits as of ``at`` (default latest); KeyError if it has none."""
    from segflow.traits.refresh import profile_scores

    out = profile_scores(app.score_store, profile_id, at)
    if not out:
        raise KeyError(f"profile {profile_id!r} has no scores (run `segflow scores refresh`)")
    return out


def scores_summary(app: Segflow) -> dict[str, dict[str, int]]:
    """How many profiles are in each RFM group, lifecycle stage, tier and frequency band."""
    rows = app.profiles.trait_value_counts(
        ("rfm_group", "lifecycle_stage", "loyalty_tier", "purchase_frequency_band")
    )
    out: dict[str, dict[str, int]] = {}
    for key, value, n in rows:
        out.setdefault(str(key), {})[str(value)] = int(n)
    return out


def discover_segments(
    app: Segflow, *, k: int = 5, depth: int = 3, at: datetime | None = None
) -> list[Proposal]:
    """Cluster scored customers and propose one readable segment per cluster."""
    from segflow.traits.discovery import discover, load_traits

    ids, mat = load_traits(app.score_store, at)
    return discover(ids, mat, k=k, depth=depth)
