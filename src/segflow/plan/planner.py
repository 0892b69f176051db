"""Build the feature plan: every segment's formula over one deduplicated feature set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from segflow.model.definition import (
    Abandonment,
    All,
    AnyOf,
    Bucket,
    ComputedCondition,
    Condition,
    EventCondition,
    InSegment,
    Not,
    Segment,
    SequenceCondition,
    TraitCondition,
    referenced_segments,
)
from segflow.model.errors import DefinitionError, Problem
from segflow.plan.computed import CART, expand
from segflow.plan.features import (
    EventAggregate,
    FAbandoned,
    FAll,
    FAny,
    FBucket,
    FCompare,
    Feature,
    FFlag,
    FNot,
    Formula,
    FRef,
    SequenceMatch,
    StaticMembership,
    TraitValue,
)


@dataclass
class Plan:
    """Deduplicated features and one formula per segment."""

    features: dict[str, Feature] = field(default_factory=dict)
    formulas: dict[str, Formula] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)

    def add(self, feature: Feature) -> str:
        key = feature.key
        self.features.setdefault(key, feature)
        return key

    def features_of(self, segment_id: str) -> set[str]:
        return _formula_features(self.formulas[segment_id])


def _formula_features(f: Formula) -> set[str]:
    if isinstance(f, FAll | FAny):
        out: set[str] = set()
        for i in f.items:
            out |= _formula_features(i)
        return out
    if isinstance(f, FNot | FRef):
        return _formula_features(f.item)
    if isinstance(f, FCompare | FFlag):
        return {f.feature}
    if isinstance(f, FAbandoned):
        return {f.last, f.follow}
    return set()


def check_references(segments: Mapping[str, Segment]) -> None:
    """Reject unknown ``in_segment`` targets and cycles, naming the cycle's path."""
    problems: list[Problem] = []
    for seg in segments.values():
        if seg.condition is None:
            continue
        for ref in sorted(referenced_segments(seg.condition)):
            if ref not in segments:
                problems.append(
                    Problem(f"{seg.id}.condition", f"in_segment: unknown segment {ref!r}")
                )
    if problems:
        raise DefinitionError(problems)
    state: dict[str, int] = {}

    def visit(sid: str, path: list[str]) -> None:
        if state.get(sid) == 2:
            return
        if state.get(sid) == 1:
            cycle = [*path[path.index(sid) :], sid]
            raise DefinitionError(
                [Problem(f"{cycle[0]}.condition", "in_segment cycle: " + " -> ".join(cycle))]
            )
        state[sid] = 1
        cond = segments[sid].condition
        if cond is not None and segments[sid].mode != "static":
            for ref in sorted(referenced_segments(cond)):
                visit(ref, [*path, sid])
        state[sid] = 2

    for sid in sorted(segments):
        visit(sid, [])


def build_plan(segments: Iterable[Segment]) -> Plan:
    """Compile segments into one plan; ``in_segment`` on a live segment is inlined so
    a whole library evaluates in a single pass, a static one reads its snapshot."""
    by_id = {s.id: s for s in segments}
    check_references(by_id)
    plan = Plan(segments=by_id)
    for sid in sorted(by_id):
        _segment_formula(plan, sid)
    return plan


def closure(segments: Mapping[str, Segment], wanted: Iterable[str]) -> list[Segment]:
    """The wanted segments and every segment they reference, transitively."""
    seen: dict[str, Segment] = {}
    stack = list(wanted)
    while stack:
        sid = stack.pop()
        if sid in seen:
            continue
        seg = segments[sid]
        seen[sid] = seg
        if seg.condition is not None:
            stack.extend(referenced_segments(seg.condition))
    return list(seen.values())


def _segment_formula(plan: Plan, sid: str) -> Formula:
    if sid in plan.formulas:
        return plan.formulas[sid]
    seg = plan.segments[sid]
    if seg.mode == "static":
        formula: Formula = FFlag(plan.add(StaticMembership(sid)))
    else:
        assert seg.condition is not None
        formula = _compile(plan, seg.condition)
    plan.formulas[sid] = formula
    return formula


def _compile(plan: Plan, node: Condition) -> Formula:
    if isinstance(node, All):
        return FAll(tuple(_compile(plan, c) for c in node.items))
    if isinstance(node, AnyOf):
        return FAny(tuple(_compile(plan, c) for c in node.items))
    if isinstance(node, Not):
        return FNot(_compile(plan, node.item))
    if isinstance(node, TraitCondition):
        return FCompare(plan.add(TraitValue(node.trait)), node.cmp)
    if isinstance(node, ComputedCondition):
        if node.name in CART:
            return FCompare(plan.add(CART[node.name]), node.cmp)
        return _compile(plan, expand(node))
    if isinstance(node, EventCondition):
        agg = EventAggregate(node.filter, node.window, node.measure, node.of)
        return FCompare(plan.add(agg), node.cmp)
    if isinstance(node, Abandonment):
        last = plan.add(EventAggregate(node.filter, node.window, "last_time", None))
        follow = plan.add(EventAggregate(node.followed_by, None, "last_time", None))
        return FAbandoned(last, follow, node.wait)
    if isinstance(node, SequenceCondition):
        return FFlag(plan.add(SequenceMatch(node.steps, node.window, node.span)))
    if isinstance(node, InSegment):
        return FRef(node.segment_id, _segment_formula(plan, node.segment_id))
    if isinstance(node, Bucket):
        return FBucket(node.salt, node.from_, node.to)
    raise TypeError(f"cannot plan {node!r}")
