"""Why a profile is (not) in a segment: the formula tree with each node's truth and, at
the leaves, the feature values behind it, as JSON data.

Each leaf is evaluated with the compiled plan's own closure, so an explanation agrees
with the membership the engine computes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from segflow.model.bucket import bucket_of
from segflow.model.definition import filter_canonical, window_canonical
from segflow.model.time import format_instant, to_us
from segflow.plan.features import (
    CartTotal,
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
    TraitValue,
)
from segflow.realtime.compile import CompiledPlan
from segflow.realtime.state import ProfileState


def explain_state(
    compiled: CompiledPlan, st: ProfileState, segment_id: str, t: datetime
) -> dict[str, Any]:
    """The explanation of ``segment_id`` for a state already brought to ``t``."""
    node = _node(compiled, compiled.plan.formulas[segment_id], st, to_us(t))
    return {
        "segment": segment_id,
        "profile": st.profile_id,
        "at": format_instant(t),
        "member": node["value"],
        "condition": node,
    }


def _node(compiled: CompiledPlan, f: Formula, st: ProfileState, t: int) -> dict[str, Any]:
    if isinstance(f, FAll | FAny):
        items = [_node(compiled, i, st, t) for i in f.items]
        truth = [i["value"] for i in items]
        op = "all" if isinstance(f, FAll) else "any"
        return {"op": op, "value": all(truth) if op == "all" else any(truth), "items": items}
    if isinstance(f, FNot):
        inner = _node(compiled, f.item, st, t)
        return {"op": "not", "value": not inner["value"], "item": inner}
    if isinstance(f, FRef):
        inner = _node(compiled, f.item, st, t)
        return {
            "op": "in_segment",
            "segment": f.segment_id,
            "value": inner["value"],
            "item": inner,
        }
    value = bool(compiled.closure(f)(st.vals, t))
    if isinstance(f, FCompare):
        return {
            "op": "compare",
            "value": value,
            "feature": _describe(compiled, f.feature, st),
            "comparison": f.cmp.canonical(),
        }
    if isinstance(f, FAbandoned):
        return {
            "op": "abandoned",
            "value": value,
            "for": f.wait.canonical(),
            "trigger": _describe(compiled, f.last, st),
            "followed_by": _describe(compiled, f.follow, st),
        }
    if isinstance(f, FFlag):
        return {"op": "flag", "value": value, "feature": _describe(compiled, f.feature, st)}
    assert isinstance(f, FBucket)
    return {
        "op": "bucket",
        "value": value,
        "salt": f.salt,
        "from": f.from_,
        "to": f.to,
        "bucket": bucket_of(st.profile_id, f.salt),
    }


def _describe(compiled: CompiledPlan, key: str, st: ProfileState) -> dict[str, Any]:
    feat: Feature = compiled.plan.features[key]
    k = compiled.index[key]
    out: dict[str, Any] = {"key": key}
    if isinstance(feat, EventAggregate):
        out["kind"] = "event"
        out.update(filter_canonical(feat.filter))
        if feat.window is not None:
            out["within"] = window_canonical(feat.window)
        out["measure"] = feat.measure
        if feat.of is not None:
            out["of"] = feat.of
    elif isinstance(feat, TraitValue):
        out["kind"] = "trait"
        out["trait"] = feat.name
    elif isinstance(feat, SequenceMatch):
        out["kind"] = "sequence"
        out["sequence"] = [filter_canonical(s) for s in feat.steps]
        if feat.window is not None:
            out["within"] = window_canonical(feat.window)
        if feat.span is not None:
            out["span"] = feat.span.canonical()
    elif isinstance(feat, CartTotal):
        out["kind"] = "cart"
        out["measure"] = feat.measure
    else:
        out["kind"] = "static"
        out["segment"] = feat.segment_id
    out["value"] = compiled.kernels[k].json_value(st)
    return out
