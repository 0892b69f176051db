"""Relative-window aggregates over one shared timeline per event filter.

Ten features on "Order Completed" (count in 7/60/90/365 days, revenue in 180/365 days,
count 60-180 days ago, ...) see the same events; only their windows differ.  So a
profile keeps one sorted array of the matching events' times per filter (plus one array
of measured values per ``of`` path), for as long as the longest window can still see
them, and each feature reads its own slice ``(now - from, now - to]`` by bisection.
Per profile that is one or two arrays instead of one container per feature, and one
insert per event instead of one per feature.

``WindowGroup`` is the route target (it takes the events) and owns the per-profile
data slot; ``WindowAgg`` is the kernel of one member feature (value, deadline, advance)
and holds no per-profile data of its own.  Time is int microseconds since the epoch.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from segflow.plan.features import EventAggregate
from segflow.realtime.kernels.base import R_EVENT, R_NONE, R_WINDOW, AggKernel, Kernel
from segflow.realtime.state import ProfileState, set_wake
from segflow.realtime.values import (
    CACHE_MAX,
    NEVER,
    SKIP,
    Extractor,
    make_extractor,
    same_value,
    window_offsets,
)

_NAN: Final = math.nan
VALUED: Final = frozenset({"sum", "avg", "min", "max"})
"""Measures that read a number per event (kept as a float, NaN when the event has none)."""


def _numbers(vs: Sequence[float], lo: int, hi: int) -> list[float]:
    return [x for x in vs[lo:hi] if x == x]  # NaN (no number) is the only x != x


def count_flips(tests: Sequence[Callable[[Any], bool]]) -> Callable[[int], int]:
    """For a count compared by ``tests``: the largest smaller count at which some test
    answers differently (-1: none), memoised.  Expiries only lower a count, so the
    instant the count first reaches it is the earliest instant anything can flip."""
    memo: dict[int, int] = {}

    def flips(cur: int) -> int:
        r = memo.get(cur)
        if r is None:
            truth = [t(cur) for t in tests]
            r = -1
            for c in range(cur - 1, -1, -1):
                if [t(c) for t in tests] != truth:
                    r = c
                    break
            if len(memo) >= CACHE_MAX:
                memo.clear()
            memo[cur] = r
        return r

    return flips


class WindowAgg(AggKernel):
    """One relative-window feature of a ``WindowGroup``: its value is a function of the
    group's timeline and the instant, so it keeps nothing per profile.

    A count whose comparisons are known (``flips``) does not wake for every expiry:
    only when its comparisons can flip; in between, its stored value may be a stale
    count with the same truth for every comparison (recomputed on the next input)."""

    __slots__ = ("flips", "freer", "frm", "group", "of", "packed", "tests", "to", "vi")

    def __init__(self, k: int, spec: EventAggregate) -> None:
        super().__init__(k, spec)
        to, frm, _since, _until = window_offsets(spec.window)
        assert frm is not None
        self.to = to
        self.frm = frm
        self.of = spec.of
        self.flips: Callable[[int], int] | None = None
        self.group: WindowGroup | None = None
        self.vi = 0
        """Index of the member's value array in the group's data (0: times only)."""
        self.packed = False
        """The group's data is a tuple (times, values...) rather than the times alone."""
        self.freer = False
        """The member with the group's longest window wakes when the last event leaves
        it, so the timeline is freed."""
        self.tests: tuple[Callable[[Any], bool], ...] | None = None
        """The comparisons formulas read the value through (None: any change matters)."""

    def _data(self, st: ProfileState) -> Any:
        g = self.group
        assert g is not None
        return st.data[g.slot]

    def _times(self, d: Any) -> array[int]:
        return d[0] if self.packed else d  # type: ignore[no-any-return]

    def value_at(self, d: Any, now: int) -> Any:
        """The value as of ``now`` over the group's data ``d`` (None: no events)."""
        if d is None:
            return self.empty
        arr = self._times(d)
        lo = bisect_right(arr, now - self.frm)
        return self._value(d, arr, lo, bisect_right(arr, now - self.to, lo))

    def _value(self, d: Any, arr: array[int], lo: int, hi: int) -> Any:
        """The value over the events ``arr[lo:hi]`` (those in the window)."""
        m = self.measure
        if m == "count":
            return hi - lo
        if m == "last_time":
            return arr[hi - 1] if hi > lo else None
        if m == "first_time":
            return arr[lo] if hi > lo else None
        vs = d[self.vi]
        if m == "distinct":
            return len({x for x in vs[lo:hi] if x is not SKIP})
        if m == "sum":
            s = sum(vs[lo:hi])
            return s if s == s else sum(_numbers(vs, lo, hi))
        xs = _numbers(vs, lo, hi)
        if not xs:
            return None
        if m == "avg":
            return sum(xs) / len(xs)
        return min(xs) if m == "min" else max(xs)

    def advance(self, st: ProfileState, now: int) -> int:
        """Called at the member's own wake-up (before ``st.now`` moves): events entering
        the window since ``st.now`` make the reason ``event`` (a future event taking
        effect), anything else ``window_expired``."""
        g = self.group
        assert g is not None
        d = st.data[g.slot]
        if d is not None:
            d = g.prune(st, d, now)
        k = self.k
        old = st.vals[k]
        new = st.vals[k] = self.value_at(d, now)
        if same_value(old, new):
            return R_NONE
        if self.to == 0 and d is not None:
            arr = self._times(d)
            if bisect_right(arr, now) > bisect_right(arr, st.now):
                return R_EVENT
        return R_WINDOW

    def deadline(self, st: ProfileState, now: int) -> int:
        d = self._data(st)
        if d is None:
            return NEVER
        arr = self._times(d)
        lo = bisect_right(arr, now - self.frm)
        return self._deadline(arr, lo, bisect_right(arr, now - self.to, lo))

    def _deadline(self, arr: array[int], lo: int, hi: int) -> int:
        """The next instant the value can change, with ``arr[lo:hi]`` in the window."""
        frm = self.frm
        n = len(arr)
        out = arr[hi] + self.to if hi < n else NEVER
        if hi > lo:
            if self.measure == "last_time":  # only the latest event leaving changes it
                out = min(out, arr[hi - 1] + frm)
            elif self.flips is None:
                out = min(out, arr[lo] + frm)
            else:
                below = self.flips(hi - lo)
                if below >= 0:
                    out = min(out, arr[hi - below - 1] + frm)
        if self.freer and n:
            out = min(out, arr[n - 1] + frm)
        return out


class WindowGroup(Kernel):
    """The route target of every ``WindowAgg`` over one filter: inserts each matching
    event once into the profile's shared timeline (its data slot: the times array,
    or a tuple of it and one value array per measured path), then refreshes the
    members it touches."""

    __slots__ = ("extracts", "frm", "members", "valued")

    grouped = True

    def __init__(self, members: Sequence[WindowAgg]) -> None:
        super().__init__(-1, None)
        self.members = tuple(members)
        self.frm = max(m.frm for m in members)
        paths: list[tuple[str, str | None]] = []
        for m in members:
            if m.measure in VALUED or m.measure == "distinct":
                key = ("distinct" if m.measure == "distinct" else "number", m.of)
                if key not in paths:
                    paths.append(key)
                m.vi = paths.index(key) + 1
            m.group = self
        self.valued = bool(paths)
        for m in members:
            m.packed = self.valued
        self.extracts: tuple[tuple[bool, Extractor], ...] = tuple(
            (kind == "distinct", make_extractor(kind if kind == "distinct" else "sum", of))
            for kind, of in paths
        )
        freer = max(members, key=lambda m: m.frm)
        freer.freer = True

    def prune(self, st: ProfileState, d: Any, now: int) -> Any:
        """Drop the events the longest window no longer sees; free the slot when none
        is left.  Returns the data (None once freed)."""
        arr = d[0] if self.valued else d
        if arr and arr[0] <= now - self.frm:
            cut = bisect_right(arr, now - self.frm)
            del arr[:cut]
            if self.valued:
                for vs in d[1:]:
                    del vs[:cut]
            if not arr:
                st.data[self.slot] = None
                return None
        return d

    def insert_into(
        self,
        st: ProfileState,
        ts: int,
        fields: Mapping[str, Any],
        now: int,
        dirty: dict[int, int] | None,
    ) -> None:
        """Add one matching event as of ``now``; every member whose value changes in a
        way its comparisons can see is marked dirty (reason ``event``), and every
        member's wake-up is recomputed (``dirty`` None: a rebuild, wake-ups later)."""
        if ts <= now - self.frm:
            return
        d = st.data[self.slot]
        if d is not None:
            d = self.prune(st, d, now)
        if d is None:
            if self.valued:
                d = (array("q"), *(([] if dist else array("d")) for dist, _x in self.extracts))
            else:
                d = array("q")
            st.data[self.slot] = d
        if self.valued:
            arr = d[0]
            n = len(arr)
            pos = n if n == 0 or ts >= arr[n - 1] else bisect_right(arr, ts)
            arr.insert(pos, ts)
            for i, (dist, extract) in enumerate(self.extracts, 1):
                x = extract(fields)
                if x is SKIP and not dist:
                    x = _NAN
                d[i].insert(pos, x)
        else:
            n = len(d)
            if n == 0 or ts >= d[n - 1]:
                d.append(ts)
            else:
                d.insert(bisect_right(d, ts), ts)
        arr = d[0] if self.valued else d
        vals = st.vals
        for m in self.members:  # value and wake-up from one pair of bisections each
            if ts <= now - m.frm:
                continue  # never seen by this member
            lo = bisect_right(arr, now - m.frm)
            hi = bisect_right(arr, now - m.to, lo)
            if ts <= now - m.to:
                mk = m.k
                old = vals[mk]
                new = vals[mk] = m._value(d, arr, lo, hi)
                if dirty is not None and not same_value(old, new):
                    tests = m.tests
                    if tests is None:
                        dirty[mk] = R_EVENT
                    else:
                        for test in tests:
                            if test(old) != test(new):
                                dirty[mk] = R_EVENT
                                break
            if dirty is not None:  # ``m.wake_at`` inlined: this runs per member per event
                w = m._deadline(arr, lo, hi)
                set_wake(st, m.k, m.offset_wake(st, now, w) if m.offs else w)


__all__ = ["VALUED", "WindowAgg", "WindowGroup", "count_flips"]
