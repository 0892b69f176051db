"""What saving a draft would cost: its size, the features it needs (shared with saved
segments through the feature plan's deduplication, or new), the stored rows its new
features read, and the evaluation time it adds, measured on the store itself."""

from __future__ import annotations

import time
from collections.abc import Iterable
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
from segflow.plan.planner import build_plan, closure

if TYPE_CHECKING:
    from segflow.service.handle import Segflow


@dataclass(frozen=True)
class FeatureUse:
    """One feature a draft needs: ``shared_with`` names the saved segments whose formulas
    already use it (one state and one aggregate for all of them); none means new.
    ``events`` are the event names it reads, ``trait`` the trait key."""

    key: str
    kind: str
    description: str
    shared_with: list[str]
    events: list[str]
    trait: str | None

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


def estimate(
    app: Segflow, draft: Segment, at: datetime | None = None, others: Iterable[Segment] = ()
) -> Estimate:
    """The cost of saving ``draft`` (new, or replacing the saved segment of its id) as of
    ``at`` (default now), with those of ``others`` (drafts saved in the same batch) that
    it references.

    Features are matched by the plan's fingerprints against the saved library's plan, so
    "shared" means the batch evaluator already computes it and the live evaluator already
    keeps its state.  Row counts are for the new features only: they are what a save adds
    to every evaluation.  The time is measured, not modelled: the saved library is
    evaluated once with the draft (which also gives the size) and once without, on this
    store as of ``at``; a model of rows read misses the engine's scan sharing and joins.
    The library runs first so that one-off work of a first evaluation (linking new trait
    writes, loading the catalogue) lands on its side, while the rows only the draft reads
    are still cold when the second run reads them, as they would be after a save.
    Repeating the runs would multiply an estimate that already costs two library
    evaluations, so one run each it is: read the difference as an order of magnitude
    (a few milliseconds either way is noise)."""
    at = at or utcnow()
    items = list(others)
    saved = app.registry.current()
    merged = dict(saved)
    for seg in closure(app.registry.check([*items, draft]), [draft.id]):
        merged[seg.id] = seg

    started = time.perf_counter()
    app.batch(saved.values(), at)
    library_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with_draft = app.batch(merged.values(), at)
    with_seconds = time.perf_counter() - started
    if draft.mode == "static":
        size = len(app.draft_members(draft, items, at))
    else:
        size = with_draft.size(draft.id)

    saved_plan = build_plan(saved.values())
    users: dict[str, list[str]] = {}
    for sid in sorted(saved_plan.formulas):
        for key in saved_plan.features_of(sid):
            users.setdefault(key, []).append(sid)
    draft_plan = build_plan(merged.values())
    uses: list[FeatureUse] = []
    for key in sorted(draft_plan.features_of(draft.id)):
        f = draft_plan.features[key]
        uses.append(
            FeatureUse(
                key,
                feature_kind(f),
                describe(f),
                users.get(key, []),
                [name_label(n) for n in event_names(f)],
                f.name if isinstance(f, TraitValue) else None,
            )
        )
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
