"""Interpret a plan for one profile from its full history, in plain Python.

Slow and obviously correct: it restates DESIGN.md §2 directly.  It is the oracle
the SQL evaluator is tested against, the basis of ``explain``, and the definition
of the value semantics the real-time engine reuses (``compare_value``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from segflow.model.bucket import bucket_of
from segflow.model.definition import (
    Absolute,
    Ago,
    Comparison,
    EventFilter,
    Window,
    Within,
    is_number,
)
from segflow.model.history import MISSING, Event, ProfileHistory, TraitWrite
from segflow.model.time import read_instant
from segflow.plan.features import (
    CART_ADD,
    CART_PRICE,
    CART_PRODUCT,
    CART_QUANTITY,
    CART_REMOVE,
    CART_RESET,
    CartTotal,
    EventAggregate,
    FAbandoned,
    FAll,
    FAny,
    FBucket,
    FCompare,
    FFlag,
    FNot,
    Formula,
    FRef,
    SequenceMatch,
    StaticMembership,
    TraitValue,
)
from segflow.plan.planner import Plan


def value_kind(v: object) -> str | None:
    """The comparison family of a value (bool, number, string), None for others."""
    if isinstance(v, bool):
        return "bool"
    if is_number(v):
        return "number"
    if isinstance(v, str):
        return "string"
    return None


def as_time(v: object) -> datetime | None:
    """A string value read as an instant (None when it is not one)."""
    return read_instant(v)


def compare_time(t: datetime | None, cmp: Comparison, at: datetime) -> bool:
    op, x = cmp.op, cmp.value
    if op == "exists":
        return t is not None
    if op == "not_exists":
        return t is None
    if t is None:
        return False
    if op == "within_last":
        return at - timedelta(microseconds=x.us) < t <= at
    if op == "older_than":
        return t <= at - timedelta(microseconds=x.us)
    if op == "before":
        return bool(t < x)
    if op == "after":
        return bool(t > x)
    raise ValueError(f"{op} does not apply to a time value")


def compare_value(v: object, cmp: Comparison, at: datetime) -> bool:
    """The value semantics shared by every engine: missing or wrong-typed values make
    every operator false except ``not_exists``."""
    op, x = cmp.op, cmp.value
    present = v is not MISSING and v is not None
    if op == "exists":
        return present
    if op == "not_exists":
        return not present
    if not present:
        return False
    kind = value_kind(v)
    if op in ("gt", "gte", "lt", "lte", "between"):
        if kind != "number":
            return False
        fv = float(v)  # type: ignore[arg-type]
        if op == "between":
            return bool(x[0] <= fv <= x[1])
        bound = float(x)
        if op == "gt":
            return fv > bound
        if op == "gte":
            return fv >= bound
        return fv < bound if op == "lt" else fv <= bound
    if op in ("eq", "ne"):
        if kind is None or kind != value_kind(x):
            return False
        same = v == x
        return same if op == "eq" else not same
    if op in ("in", "not_in"):
        same_kind = [i for i in x if value_kind(i) == kind]
        if kind is None or not same_kind:
            return False
        hit = any(v == i for i in same_kind)
        return hit if op == "in" else not hit
    if op in ("contains", "starts_with", "ends_with"):
        if kind != "string":
            return False
        s = str(v)
        if op == "contains":
            return x in s
        return s.startswith(x) if op == "starts_with" else s.endswith(x)
    return compare_time(as_time(v), cmp, at)


def in_window(ts: datetime, w: Window | None, at: datetime) -> bool:
    if ts > at:
        return False
    if w is None:
        return True
    if isinstance(w, Within):
        return ts > at - timedelta(microseconds=w.span.us)
    if isinstance(w, Ago):
        return (
            at - timedelta(microseconds=w.from_ago.us)
            < ts
            <= at - timedelta(microseconds=w.to_ago.us)
        )
    assert isinstance(w, Absolute)
    return ts >= w.since and (w.until is None or ts < w.until)


def matches(e: Event, f: EventFilter, at: datetime) -> bool:
    if e.name is None or e.name not in f.names:
        return False
    return all(compare_value(e.fields.get(p.path, MISSING), p.cmp, at) for p in f.where)


def aggregate(events: Sequence[Event], a: EventAggregate, at: datetime) -> Any:
    """The measure over matching events; empty set: count/sum/distinct 0, others None.
    ``top`` is the most frequent string value of ``of`` (ties: the smallest)."""
    hits = [e for e in events if in_window(e.timestamp, a.window, at) and matches(e, a.filter, at)]
    m = a.measure
    if m == "count":
        return len(hits)
    if m == "first_time":
        return min((e.timestamp for e in hits), default=None)
    if m == "last_time":
        return max((e.timestamp for e in hits), default=None)
    assert a.of is not None
    if m == "distinct":
        seen = {
            (value_kind(v), v) if value_kind(v) else repr(v)
            for e in hits
            if (v := e.fields.get(a.of, MISSING)) is not MISSING and v is not None
        }
        return len(seen)
    if m == "top":
        return top_value(e.fields.get(a.of, MISSING) for e in hits)
    nums = [float(v) for e in hits if value_kind(v := e.fields.get(a.of, MISSING)) == "number"]
    if m == "sum":
        return sum(nums)
    if not nums:
        return None
    if m == "avg":
        return sum(nums) / len(nums)
    return min(nums) if m == "min" else max(nums)


def top_value(values: Iterable[object]) -> str | None:
    """The most frequent string (ties: the smallest); other values do not count."""
    counts = Counter(v for v in values if isinstance(v, str))
    if not counts:
        return None
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def cart_total(events: Sequence[Event], c: CartTotal, at: datetime) -> float:
    """``CartTotal`` restated: the latest action per product after the latest order."""
    seen = [e for e in events if e.timestamp <= at]
    reset = max((e.timestamp for e in seen if e.name == CART_RESET), default=None)
    lines: dict[str, tuple[tuple[datetime, bool, float, float], bool, float, float | None]] = {}
    for e in seen:
        if e.name not in (CART_ADD, CART_REMOVE) or (reset is not None and e.timestamp <= reset):
            continue
        product = e.fields.get(CART_PRODUCT)
        if not isinstance(product, str):
            continue
        q, p = e.fields.get(CART_QUANTITY), e.fields.get(CART_PRICE)
        qty = float(q) if value_kind(q) == "number" else 1.0  # type: ignore[arg-type]
        price = float(p) if value_kind(p) == "number" else None  # type: ignore[arg-type]
        removed = e.name == CART_REMOVE
        order = (e.timestamp, removed, qty, -math.inf if price is None else price)
        if product not in lines or order > lines[product][0]:
            lines[product] = (order, not removed, qty, price)
    open_lines = [(qty, price) for _o, added, qty, price in lines.values() if added]
    if c.measure == "items":
        return sum(qty for qty, _p in open_lines)
    return sum(qty * price for qty, price in open_lines if price is not None)


def trait_as_of(writes: Sequence[TraitWrite], key: str, at: datetime) -> Any:
    best: TraitWrite | None = None
    for w in writes:
        if (
            w.key == key
            and w.timestamp <= at
            and (best is None or (w.timestamp, w.message_id) > (best.timestamp, best.message_id))
        ):
            best = w
    return MISSING if best is None or best.value is None else best.value


def sequence_matched(events: Sequence[Event], s: SequenceMatch, at: datetime) -> bool:
    """Greedy earliest chain from every first-step event (optimal for both window and span)."""
    inside = sorted(
        (e for e in events if in_window(e.timestamp, s.window, at)), key=lambda e: e.timestamp
    )
    for start in inside:
        if not matches(start, s.steps[0], at):
            continue
        t = start.timestamp
        ok = True
        for step in s.steps[1:]:
            nxt = next((e for e in inside if e.timestamp > t and matches(e, step, at)), None)
            if nxt is None:
                ok = False
                break
            t = nxt.timestamp
        if ok and (s.span is None or t - start.timestamp <= timedelta(microseconds=s.span.us)):
            return True
    return False


class Interpreter:
    """Evaluates every formula of a plan for one profile as of ``at``."""

    def __init__(self, plan: Plan, history: ProfileHistory, at: datetime) -> None:
        self.plan = plan
        self.h = history
        self.at = at
        self._values: dict[str, Any] = {}

    def value(self, key: str) -> Any:
        if key not in self._values:
            f = self.plan.features[key]
            if isinstance(f, EventAggregate):
                v: Any = aggregate(self.h.events, f, self.at)
            elif isinstance(f, TraitValue):
                v = trait_as_of(self.h.traits, f.name, self.at)
            elif isinstance(f, SequenceMatch):
                v = sequence_matched(self.h.events, f, self.at)
            elif isinstance(f, CartTotal):
                v = cart_total(self.h.events, f, self.at)
            else:
                assert isinstance(f, StaticMembership)
                v = f.segment_id in self.h.static_segments
            self._values[key] = v
        return self._values[key]

    def formula(self, f: Formula) -> bool:
        if isinstance(f, FAll):
            return all(self.formula(i) for i in f.items)
        if isinstance(f, FAny):
            return any(self.formula(i) for i in f.items)
        if isinstance(f, FNot):
            return not self.formula(f.item)
        if isinstance(f, FRef):
            return self.formula(f.item)
        if isinstance(f, FCompare):
            feat = self.plan.features[f.feature]
            v = self.value(f.feature)
            if isinstance(feat, EventAggregate) and feat.measure in ("first_time", "last_time"):
                return compare_time(v, f.cmp, self.at)
            return compare_value(MISSING if v is None else v, f.cmp, self.at)
        if isinstance(f, FAbandoned):
            last, follow = self.value(f.last), self.value(f.follow)
            if last is None or last > self.at - timedelta(microseconds=f.wait.us):
                return False
            return bool(follow is None or follow <= last)
        if isinstance(f, FFlag):
            return bool(self.value(f.feature))
        if isinstance(f, FBucket):
            return f.from_ <= bucket_of(self.h.profile_id, f.salt) < f.to
        raise TypeError(f"cannot interpret {f!r}")

    def segments(self) -> dict[str, bool]:
        return {sid: self.formula(f) for sid, f in self.plan.formulas.items()}
