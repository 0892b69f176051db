"""Features with no incremental form (time-relative predicates on an event property,
``top``, the cart): folded by the interpreter's own functions over candidate events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from segflow.model.definition import TIME_MEASURES, EventFilter, PropertyPredicate
from segflow.model.history import MISSING, Event
from segflow.model.time import from_us, to_us
from segflow.plan.features import CartTotal, EventAggregate, SequenceMatch
from segflow.plan.interpret import aggregate, as_time, cart_total, sequence_matched
from segflow.realtime.kernels.base import (
    R_EVENT,
    R_NONE,
    R_REWAKE,
    R_WINDOW,
    Kernel,
    json_time,
)
from segflow.realtime.state import ProfileState
from segflow.realtime.values import NEVER, same_value, split_filter, window_offsets


def _interval(
    to: int,
    frm: int | None,
    since: int,
    until: int,
    ts: int,
    fields: Mapping[str, Any],
    timed: Sequence[PropertyPredicate],
) -> tuple[int, int] | None:
    """The activity interval ``[start, end)`` of one event under a window and
    time-relative predicates (``within_last D`` on v: ``[v, v + D)``, ``older_than D``:
    ``[v + D, ∞)``), or None when it is never active."""
    if ts < since or ts >= until:
        return None
    start = ts + to
    end = NEVER if frm is None else ts + frm
    for p in timed:
        t = as_time(fields.get(p.path, MISSING))
        if t is None:
            return None
        v = to_us(t)
        dur = p.cmp.value.us
        if p.cmp.op == "within_last":
            start = max(start, v)
            end = min(end, v + dur)
        else:
            start = max(start, v + dur)
    return (start, end) if start < end else None


class _Gen:
    __slots__ = ("cands", "last")

    def __init__(self, last: int) -> None:
        self.cands: list[tuple[tuple[int, ...], int, Event]] = []
        self.last = last


class GenericKernel(Kernel):
    """Features whose filters hold time-relative predicates (``within_last`` on an event
    property), ``top`` and the cart (no incremental form): each candidate event keeps the
    boundaries of its activity intervals, and
    the value is recomputed with the interpreter's own ``aggregate``/``sequence_matched``
    over the candidates.  Rare, so obviously-correct beats fast here."""

    __slots__ = ("filters", "spec", "window")

    def __init__(self, k: int, spec: EventAggregate | SequenceMatch | CartTotal) -> None:
        if isinstance(spec, EventAggregate):
            empty: Any = 0 if spec.measure in ("count", "sum", "distinct") else None
            filters: tuple[EventFilter, ...] = (spec.filter,)
        elif isinstance(spec, CartTotal):
            empty = 0
            filters = spec.filters
        else:
            empty = False
            filters = spec.steps
        super().__init__(k, empty)
        self.spec = spec
        self.window = window_offsets(None if isinstance(spec, CartTotal) else spec.window)
        self.filters = tuple((f.names, *split_filter(f)) for f in filters)

    def _value(self, st: ProfileState, d: _Gen, now: int) -> Any:
        events = [c[2] for c in d.cands]
        at = from_us(now)
        if isinstance(self.spec, EventAggregate):
            v = aggregate(events, self.spec, at)
            return to_us(v) if isinstance(v, datetime) else v
        if isinstance(self.spec, CartTotal):
            return cart_total(events, self.spec, at)
        return sequence_matched(events, self.spec, at)

    def insert(
        self, st: ProfileState, ts: int, name: str, fields: Mapping[str, Any], now: int, arg: int
    ) -> int:
        to, frm, since, until = self.window
        bounds: set[int] = set()
        end = -NEVER
        for names, fixed, timed in self.filters:
            if name not in names or (fixed is not None and not fixed(fields)):
                continue
            iv = _interval(to, frm, since, until, ts, fields, timed)
            if iv is not None:
                bounds.update(iv)
                end = max(end, iv[1])
        if end <= now:
            return R_NONE
        k = self.k
        d = st.data[self.slot]
        if d is None:
            d = st.data[self.slot] = _Gen(now)
        bounds.discard(NEVER)
        event = Event(from_us(ts), name, fields)
        d.cands.append((tuple(sorted(bounds)), end, event))
        d.last = max(d.last, now)
        if min(bounds) > now:
            return R_REWAKE
        old = st.vals[k]
        new = st.vals[k] = self._value(st, d, now)
        return (R_EVENT if not same_value(old, new) else R_NONE) | R_REWAKE

    def advance(self, st: ProfileState, now: int) -> int:
        k = self.k
        d = st.data[self.slot]
        if d is None:
            return R_NONE
        started_at_ts = any(
            d.last < b[0] <= now and b[0] == to_us(e.timestamp) for b, _end, e in d.cands if b
        )
        d.cands = [c for c in d.cands if c[1] > now]
        d.last = now
        old = st.vals[k]
        new = st.vals[k] = self._value(st, d, now)
        if not d.cands:
            st.data[self.slot] = None
        if same_value(old, new):
            return R_NONE
        return R_EVENT if started_at_ts else R_WINDOW

    def deadline(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d is None:
            return NEVER
        out = NEVER
        last = d.last
        for bounds, _end, _e in d.cands:
            for b in bounds:
                if b > last:
                    out = min(out, b)
                    break
        return out

    def time_value(self, st: ProfileState) -> int | None:
        v = st.vals[self.k]
        timed = isinstance(self.spec, EventAggregate) and self.spec.measure in TIME_MEASURES
        return v if timed else None

    def json_value(self, st: ProfileState) -> Any:
        v = st.vals[self.k]
        timed = isinstance(self.spec, EventAggregate) and self.spec.measure in TIME_MEASURES
        return json_time(v) if timed else v
