"""What saving a draft would cost: its size, the features it needs (shared with saved
segments through the feature plan's deduplication, or new), the stored rows its new
features read, and the evaluation time it adds, measured on the store itself."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from segflow.model.definition import Segment
from segflow.model.time import format_instant, utcnow
from segflow.plan.features import (
    TraitValue,
    describe,
    event_names,
    feature_kind,
    name_label,
)
from segflow.plan.planner import build_plan

if TYPE_CHECKING:
    from segflow.service.handle import Segflow


@dataclass(frozen=True)
class FeatureUse:
    """One feature a draft needs: ``shared_with`` names the saved segments whose formulas
    already use it (one state and one aggregate for all of them); none means new."""

    key: str
    kind: str
    description: str
    shared_with: list[str]

    @property
    def new(self) -> bool:
        return not self.shared_with


@dataclass(frozen=True)
class EventReads:
    """Stored events (``timestamp <= at``) of one event-name set the new features scan."""

    names: list[str]
    events: int


@dataclass(frozen=True)
class TraitReads:
    """Stored writes (``timestamp <= at``) of one trait key a new feature reads."""

    key: str
    rows: int


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of one batch evaluation of the saved library, without and with
    the draft, and the difference (never below zero)."""

    library_seconds: float
    with_draft_seconds: float
    added_seconds: float


@dataclass(frozen=True)
class Estimate:
    segment_id: str
    at: datetime
    size: int
    profiles: int
    features: list[FeatureUse]
    events: list[EventReads]
    traits: list[TraitReads]
    timing: Timing

    @property
    def share(self) -> float:
        """Members as a fraction of every profile (0 in an empty store)."""
        return self.size / self.profiles if self.profiles else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = format_instant(self.at)
        out["share"] = self.share
        for f, use in zip(out["features"], self.features, strict=True):
            f["new"] = use.new
        return out


def estimate(app: Segflow, draft: Segment, at: datetime | None = None) -> Estimate:
    """The cost of saving ``draft`` (new, or replacing the saved segment of its id) as of
    ``at`` (default now).

    Features are matched by the plan's fingerprints against the saved library's plan, so
    "shared" means the batch evaluator already computes it and the live evaluator already
    keeps its state.  Row counts are for the new features only: they are what a save adds
    to every evaluation.  The time is measured, not modelled: the saved library is
    evaluated once with the draft (which also gives the size) and once without, on this
    store as of ``at``; a model of rows read misses the engine's scan sharing and joins.
    The run with the draft goes first so a cold cache, if any, weighs on the draft's side
    and the added time errs high; repeating the runs would multiply an estimate that
    already costs two library evaluations, so one run each it is (expect noise of a few
    milliseconds on small stores)."""
    at = at or utcnow()
    merged = app.registry.check([draft])
    saved = app.registry.current()

    started = time.perf_counter()
    with_draft = app.batch(merged.values(), at)
    with_seconds = time.perf_counter() - started
    if draft.mode == "static":
        size = len(app.draft_members(draft, at=at))
    else:
        size = with_draft.size(draft.id)
    started = time.perf_counter()
    app.batch(saved.values(), at)
    library_seconds = time.perf_counter() - started

    saved_plan = build_plan(saved.values())
    users: dict[str, list[str]] = {}
    for sid in sorted(saved_plan.formulas):
        for key in saved_plan.features_of(sid):
            users.setdefault(key, []).append(sid)
    draft_plan = build_plan(merged.values())
    uses = [
        FeatureUse(
            key,
            feature_kind(draft_plan.features[key]),
            describe(draft_plan.features[key]),
            users.get(key, []),
        )
        for key in sorted(draft_plan.features_of(draft.id))
    ]
    new = [draft_plan.features[u.key] for u in uses if u.new]
    name_sets = sorted({names for f in new if (names := event_names(f))})
    counts = app.read_counts.event_counts((n for s in name_sets for n in s), at)
    events = [
        EventReads([name_label(n) for n in names], sum(counts.get(n, 0) for n in names))
        for names in name_sets
    ]
    trait_rows = app.read_counts.trait_rows((f.name for f in new if isinstance(f, TraitValue)), at)
    return Estimate(
        draft.id,
        at,
        size,
        app.store.count_profiles(),
        uses,
        events,
        [TraitReads(k, n) for k, n in trait_rows.items()],
        Timing(library_seconds, with_seconds, max(0.0, with_seconds - library_seconds)),
    )
