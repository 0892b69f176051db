"""All-time aggregates: no window, or an absolute one, so an event counts forever once
its time has come and a scalar per feature suffices."""

from __future__ import annotations

from bisect import insort
from collections.abc import Mapping
from typing import Any

from segflow.plan.features import EventAggregate
from segflow.realtime.kernels.base import R_EVENT, R_NONE, R_REWAKE, AggKernel
from segflow.realtime.state import ProfileState, set_wake
from segflow.realtime.values import NEVER, SKIP, same_value, window_offsets


class _Acc:
    __slots__ = ("pending", "x")

    def __init__(self, x: Any) -> None:
        self.x = x
        self.pending: list[tuple[int, Any]] | None = None


def _pending_key(p: tuple[int, Any]) -> int:
    return p[0]


class AllTimeAgg(AggKernel):
    """No window (or an absolute one): an event, once at or before now, counts forever,
    so scalars suffice; events from the future wait in ``pending``."""

    __slots__ = ("since", "until")

    def __init__(self, k: int, spec: EventAggregate) -> None:
        super().__init__(k, spec)
        _to, _frm, self.since, self.until = window_offsets(spec.window)

    def _x0(self) -> Any:
        if self.measure == "avg":
            return (0.0, 0)
        if self.measure == "distinct":
            return set()
        return None

    def insert(
        self, st: ProfileState, ts: int, name: str, fields: Mapping[str, Any], now: int, arg: int
    ) -> int:
        if ts < self.since or ts >= self.until:
            return R_NONE
        item = self.extract(fields)
        if item is SKIP:
            return R_NONE
        if ts > now:
            d = st.data[self.slot]
            if d is None:
                d = st.data[self.slot] = _Acc(self._x0())
            if d.pending is None:
                d.pending = [(ts, item)]
            else:
                insort(d.pending, (ts, item), key=_pending_key)
            return R_REWAKE
        r = self._fold(st, ts, item)
        return r | R_REWAKE if r and self.offs else r

    def _fold(self, st: ProfileState, ts: int, item: Any) -> int:
        k = self.k
        vals = st.vals
        old = vals[k]
        m = self.measure
        if m == "count":
            new: Any = old + 1
        elif m == "sum":
            new = old + item
        elif m == "last_time":
            new = ts if old is None or ts > old else old
        elif m == "first_time":
            new = ts if old is None or ts < old else old
        elif m == "min":
            new = item if old is None or item < old else old
        elif m == "max":
            new = item if old is None or item > old else old
        else:
            d = st.data[self.slot]
            if d is None:
                d = st.data[self.slot] = _Acc(self._x0())
            if m == "avg":
                s, n = d.x
                s += item
                n += 1
                d.x = (s, n)
                new = s / n
            else:
                d.x.add(item)
                new = len(d.x)
        vals[k] = new
        return R_EVENT if not same_value(old, new) else R_NONE

    def advance(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d is None or not d.pending:
            return R_NONE
        r = R_NONE
        p = d.pending
        while p and p[0][0] <= now:
            ts, item = p.pop(0)
            r = max(r, self._fold(st, ts, item))
        if not p:
            d.pending = None
            if d.x is None:
                st.data[self.slot] = None
        return r

    def deadline(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d is None or not d.pending:
            return NEVER
        first: int = d.pending[0][0]
        return first

    def rewake(self, st: ProfileState, now: int) -> None:
        """``Kernel.rewake`` with ``deadline`` and ``wake_at`` inlined (a last-seen time
        with an offset rewakes on every event it counts)."""
        d = st.data[self.slot]
        w: int = NEVER if d is None or not d.pending else d.pending[0][0]
        set_wake(st, self.k, self.offset_wake(st, now, w) if self.offs else w)
