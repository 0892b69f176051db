"""Per-profile feature states: the incremental folds behind every feature of a plan.

A *kernel* is compiled once per feature of a plan and holds only static facts (window
offsets, measure, predicates); the per-profile data lives in ``ProfileState.data[slot]``
(``None`` while the feature has seen nothing) and the feature's current value in
``ProfileState.vals[k]``, so ten segments that use one feature share one state.

Every event contributes to a feature during one *activity interval* ``[start, end)`` of
evaluation instants: ``within: W`` gives ``[ts, ts + W)``, ``{from_ago: F, to_ago: A}``
gives ``[ts + A, ts + F)``, no window or an absolute one ``[ts, ∞)`` (or never).  A
kernel keeps the events that are active now or will be (future events, events waiting
to enter an ``Ago`` window), drops the ones that never will be again, and reports the
next instant at which its value can change (``deadline``).  Time is int microseconds
since the epoch throughout; value semantics come from ``segflow.plan.interpret``.
"""

from __future__ import annotations

import copyreg
import pickle
import sys
from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

from segflow.model.definition import (
    TIME_MEASURES,
    Absolute,
    Ago,
    Comparison,
    EventFilter,
    PropertyPredicate,
    Window,
    Within,
    is_number,
)
from segflow.plan.features import CartTotal, EventAggregate, SequenceMatch
from segflow.plan.interpret import (
    MISSING,
    Event,
    _as_time,
    _kind,
    aggregate,
    cart_total,
    compare_value,
    sequence_matched,
)

EPOCH: Final = datetime(1970, 1, 1)
_ONE_US: Final = timedelta(microseconds=1)
NEVER: Final = 1 << 62
"""No deadline (far beyond any datetime)."""
BEFORE_TIME: Final = -(1 << 62)
"""Watermark of a state that has never been evaluated."""

R_NONE: Final = 0
R_WINDOW: Final = 1
R_TRAIT: Final = 2
R_EVENT: Final = 3
REASON_NAMES: Final = ("", "window_expired", "trait_changed", "event")
"""Reason codes, by priority: when several causes meet at one instant the highest wins."""
R_REWAKE: Final = 4
"""Flag or-ed into an insert's result: the kernel's next deadline may have moved."""

TIME_RELATIVE_OPS: Final = frozenset({"within_last", "older_than"})
"""Operators whose truth depends on the evaluation instant (not just on the value)."""


def to_us(dt: datetime) -> int:
    """Naive-UTC datetime to int microseconds since the epoch (exact)."""
    return (dt - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(0, 0, us)  # positional: faster than keywords


# MISSING must stay the one sentinel through deepcopy (explain) and pickle (state stores).
copyreg.pickle(type(MISSING), lambda _m: "MISSING")


# --------------------------------------------------------------------------- values


_SCALAR_TYPES: Final = frozenset({int, float, bool, type(None), type(MISSING)})
_CACHE_MAX: Final = 4096
_ANY_INSTANT: Final = datetime(2000, 1, 1)


def value_test(cmp: Comparison) -> Callable[[Any], bool]:
    """``compare_value(·, cmp, at)`` memoised by (type, value).

    Only for operators that do not read the instant: the semantics stay the
    interpreter's, the hot path becomes a dict lookup.
    """
    if cmp.op in TIME_RELATIVE_OPS:
        raise ValueError(f"{cmp.op} depends on the instant; it cannot be memoised")
    cache: dict[object, bool] = {}

    def test(v: Any) -> bool:
        cls = v.__class__
        key: object
        if cls is str:
            key = v
        elif cls in _SCALAR_TYPES:
            key = (cls, v)
        else:
            return compare_value(v, cmp, _ANY_INSTANT)
        r = cache.get(key)
        if r is None:
            r = compare_value(v, cmp, _ANY_INSTANT)
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[key] = r
        return r

    return test


_NUMBER_OPS: Final = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def number_expr(x: str, cmp: Comparison, bind: Callable[[object], str]) -> str | None:
    """``compare_value(x, cmp, ·)`` as a Python expression for a value that is always an
    int or a float (a count, a sum, a distinct count): a plain comparison, no memo
    lookup on the hot path (``bind`` names a constant).  None: the operator needs
    ``value_test``.  The same answers as ``float(x)`` compared, for |x| below 2**53."""
    op, b = cmp.op, cmp.value
    if op in _NUMBER_OPS:
        return f"({x} {_NUMBER_OPS[op]} {bind(float(b))})"
    if op == "between":
        return f"({bind(b[0])} <= {x} <= {bind(b[1])})"
    if op in ("eq", "ne"):
        if not is_number(b):
            return "False"  # a number never equals (nor differs from) a non-number
        return f"({x} {'==' if op == 'eq' else '!='} {bind(b)})"
    return None


def number_test(cmp: Comparison) -> Callable[[Any], bool]:
    """``number_expr`` as a function of one number (else ``value_test``)."""
    env: dict[str, Any] = {}

    def bind(obj: object) -> str:
        name = f"_b{len(env)}"
        env[name] = obj
        return name

    expr = number_expr("v", cmp, bind)
    if expr is None:
        return value_test(cmp)
    test: Callable[[Any], bool] = eval(f"lambda v: {expr}", env)
    return test


_UNPARSED: Final = object()


def instant_test(cmp: Comparison) -> Callable[[Any, int], bool]:
    """``compare_value(v, cmp, at)`` for ``within_last``/``older_than``, with ``at`` in
    µs: a string value is parsed to an instant once (memoised), then compared in
    integers; anything else (missing, numbers, unparsable text) is false."""
    if cmp.op not in TIME_RELATIVE_OPS:
        raise ValueError(f"{cmp.op} does not read the instant")
    span = cmp.value.us
    within = cmp.op == "within_last"
    cache: dict[str, int | None] = {}

    def test(v: Any, t: int) -> bool:
        if v.__class__ is not str and not isinstance(v, str):
            return False
        us = cache.get(v, _UNPARSED)
        if us is _UNPARSED:
            when = _as_time(v)
            us = None if when is None else to_us(when)
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[v] = us
        if us is None:
            return False
        return bool(t - span < us <= t) if within else bool(us <= t - span)  # type: ignore[operator]

    return test


FieldsPredicate = Callable[[Mapping[str, Any]], bool]
_PREDICATES: dict[frozenset[PropertyPredicate], FieldsPredicate] = {}


def compile_predicates(preds: Sequence[PropertyPredicate]) -> FieldsPredicate | None:
    """All of ``preds`` on one event's fields as one closure (``None``: always true).

    Identical predicate sets share one closure, hence one memo cache."""
    if not preds:
        return None
    key = frozenset(preds)
    hit = _PREDICATES.get(key)
    if hit is not None:
        return hit
    tests = tuple((p.path, value_test(p.cmp)) for p in preds)
    fn: FieldsPredicate
    if len(tests) == 1:
        ((p0, t0),) = tests

        def fn(fields: Mapping[str, Any]) -> bool:
            return t0(fields.get(p0, MISSING))

    elif len(tests) == 2:
        (p0, t0), (p1, t1) = tests

        def fn(fields: Mapping[str, Any]) -> bool:
            return t0(fields.get(p0, MISSING)) and t1(fields.get(p1, MISSING))

    else:

        def fn(fields: Mapping[str, Any]) -> bool:
            return all(t(fields.get(p, MISSING)) for p, t in tests)

    _PREDICATES[key] = fn
    return fn


def split_filter(f: EventFilter) -> tuple[FieldsPredicate | None, tuple[PropertyPredicate, ...]]:
    """The instant-independent part of a filter as a closure, and its time-relative rest."""
    fixed = [p for p in f.where if p.cmp.op not in TIME_RELATIVE_OPS]
    timed = tuple(p for p in f.where if p.cmp.op in TIME_RELATIVE_OPS)
    return compile_predicates(fixed), timed


def same_value(a: object, b: object) -> bool:
    return a is b or (a.__class__ is b.__class__ and a == b)


SKIP: Final = object()
"""An event that matches a filter but adds nothing to the measure (e.g. no numeric ``of``)."""

Extractor = Callable[[Mapping[str, Any]], Any]


def _no_item(_fields: Mapping[str, Any]) -> Any:
    return None


def make_extractor(measure: str, of: str | None) -> Extractor:
    """What one event adds to a measure: a float, a distinct key, nothing, or SKIP."""
    if of is None or measure in ("count", "first_time", "last_time"):
        return _no_item
    path = of
    if measure == "distinct":

        def distinct_key(fields: Mapping[str, Any]) -> Any:
            v = fields.get(path, MISSING)
            if v is MISSING or v is None:
                return SKIP
            kind = _kind(v)
            return (kind, v) if kind else repr(v)

        return distinct_key

    def number(fields: Mapping[str, Any]) -> Any:
        v = fields.get(path)
        cls = v.__class__
        if cls is float or cls is int or is_number(v):
            return float(v)  # type: ignore[arg-type]
        return SKIP

    return number


def window_offsets(w: Window | None) -> tuple[int, int | None, int, int]:
    """``(to, from, since, until)``: active for ``ts + to <= t < ts + from`` when
    ``since <= ts < until``; ``from`` None means never leaves."""
    if isinstance(w, Within):
        return 0, w.span.us, -NEVER, NEVER
    if isinstance(w, Ago):
        return w.to_ago.us, w.from_ago.us, -NEVER, NEVER
    if isinstance(w, Absolute):
        until = to_us(w.until) if w.until is not None else NEVER
        return 0, None, to_us(w.since), until
    return 0, None, -NEVER, NEVER


# --------------------------------------------------------------------------- state


class ProfileState:
    """Everything the engine knows of one profile: feature data and values, memberships,
    the next wake-up instant of each feature that has one, and the watermark ``now``
    (the latest instant it has been evaluated at; inputs before it are late)."""

    __slots__ = (
        "data",
        "fresh",
        "members",
        "now",
        "nxt",
        "profile_id",
        "static",
        "vals",
        "wake",
        "wmask",
    )

    def __init__(self, profile_id: str, vals: list[Any], static: frozenset[str]) -> None:
        self.profile_id = profile_id
        self.now = BEFORE_TIME
        self.vals = vals
        self.data: list[Any] = vals
        """The kernels' data slots, which follow the values in the same list (one list
        per profile instead of two)."""
        self.members = 0
        """Bit s set: the profile is in segment s (of the engine's sorted segment ids)."""
        self.wmask = 0
        """Bit k set: feature k has a wake-up, kept in ``wake``."""
        self.wake: array[int] | None = None
        """The wake-ups of the features in ``wmask``, in feature order (sparse: most
        features of a profile have none)."""
        self.nxt = NEVER
        """``min(wake)``, kept exact: the profile's next deadline."""
        self.static = static
        self.fresh = True

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, v in zip(self.__slots__, state, strict=True):
            setattr(self, name, v)


def state_size_bytes(st: ProfileState) -> int:
    """Serialised size of a state (pickle, highest protocol): what a keyed state store
    would hold per profile.  In-process memory is larger (Python object headers),
    see ``state_memory_bytes``."""
    return len(pickle.dumps(st, protocol=pickle.HIGHEST_PROTOCOL))


def state_memory_bytes(st: ProfileState) -> int:
    """Approximate in-process memory of a state: ``sys.getsizeof`` summed over the
    objects it owns, skipping shared singletons (small ints, None, MISSING, interned
    names, the shared static-segment set)."""
    seen: set[int] = set()
    total = 0
    stack: list[object] = [st]
    shared = (None, True, False, MISSING, st.static)
    while stack:
        o = stack.pop()
        if id(o) in seen or any(o is s for s in shared):
            continue
        if isinstance(o, int) and -5 <= o <= 256 and not isinstance(o, bool):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, list | tuple | set | frozenset):
            stack.extend(o)
        elif hasattr(o, "__slots__"):
            for name in o.__slots__:
                if hasattr(o, name):
                    stack.append(getattr(o, name))
    return total


def set_wake(st: ProfileState, k: int, w: int) -> None:
    """Set feature ``k``'s wake-up to ``w`` (NEVER: none) and keep ``st.nxt`` exact."""
    bit = 1 << k
    mask = st.wmask
    wake = st.wake
    if mask & bit:
        assert wake is not None
        i = (mask & (bit - 1)).bit_count()
        old = wake[i]
        if w == old:
            return
        if w < NEVER:
            wake[i] = w
        else:  # changed in place: a new array per change would be one more object
            del wake[i]  # for the collector's young generation to scan (at 1M profiles,
            st.wmask = mask ^ bit  # each one a cache miss)
    else:
        if w >= NEVER:
            return
        old = NEVER
        if wake is None:
            wake = st.wake = array("q", (w,))
        else:
            wake.insert((mask & (bit - 1)).bit_count(), w)
        st.wmask = mask | bit
    nxt = st.nxt
    if w < nxt:
        st.nxt = w
    elif old == nxt:
        st.nxt = min(wake) if wake else NEVER


# --------------------------------------------------------------------------- kernels


class Kernel:
    """Static part of one feature; every method reads/writes ``st.data[self.slot]``/``st.vals[k]``.

    ``offs`` are the durations after the feature's time value (``last_time + 24h`` of an
    abandonment, ``signup + 30d`` of ``within_last``) at which a comparison on it flips
    by itself; they are wake-ups like the kernel's own deadlines."""

    __slots__ = ("empty", "k", "offs", "slot")

    grouped: ClassVar[bool] = False
    """A route target that feeds several features (``insert_into``), not one."""

    def __init__(self, k: int, empty: Any) -> None:
        self.k = k
        self.empty = empty
        self.offs: tuple[int, ...] = ()
        self.slot = -1
        """Index of the kernel's per-profile data in ``ProfileState.data`` (-1: none;
        only kernels that keep data get a slot, so states stay small)."""

    def insert(
        self, st: ProfileState, ts: int, name: str, fields: Mapping[str, Any], now: int, arg: int
    ) -> int:
        """Add one matching event as of ``now``; return the reason code if the value at
        ``now`` changed (else 0), or-ed with ``R_REWAKE`` when the deadline may have moved."""
        return R_NONE

    def insert_into(
        self,
        st: ProfileState,
        ts: int,
        fields: Mapping[str, Any],
        now: int,
        dirty: dict[int, int] | None,
    ) -> None:
        """A grouped target's insert: marks the features it changes in ``dirty``."""
        raise NotImplementedError

    def rewake(self, st: ProfileState, now: int) -> None:
        """Recompute the feature's entry in ``st.wake`` (and ``st.nxt``): the earliest of
        its own deadline and of the self-flipping instants ``time value + off`` still
        after ``now``."""
        self.wake_at(st, now, self.deadline(st, now))

    def wake_at(self, st: ProfileState, now: int, w: int) -> None:
        """Set the feature's wake-up from its own deadline ``w`` (computed by the
        caller, e.g. from bisections it already made), self-flipping instants included."""
        if self.offs:
            w = self.offset_wake(st, now, w)
        set_wake(st, self.k, w)

    def offset_wake(self, st: ProfileState, now: int, w: int) -> int:
        """``w`` or the first self-flipping instant ``time value + off`` after ``now``,
        whichever is earlier."""
        tv = self.time_value(st)
        if tv is not None:
            for off in self.offs:
                c = tv + off
                if c > now:
                    return c if c < w else w
        return w

    def advance(self, st: ProfileState, now: int) -> int:
        """Bring the feature to ``now`` (every own deadline <= now); reason code or 0."""
        return R_NONE

    def deadline(self, st: ProfileState, now: int) -> int:
        """Next instant after ``now`` at which a comparison on the value can change with
        no new input (NEVER: none); earlier is allowed, later never."""
        return NEVER

    def time_value(self, st: ProfileState) -> int | None:
        """The feature's value as an instant, for time comparisons that flip by themselves."""
        return None

    def json_value(self, st: ProfileState) -> Any:
        """The value as JSON-ready data (for explain)."""
        return _json(st.vals[self.k])


def _json(v: Any) -> Any:
    if v is MISSING:
        return None
    if isinstance(v, datetime):
        return v.isoformat(timespec="microseconds") + "Z"
    return v


def _json_time(us: int | None) -> str | None:
    return None if us is None else from_us(us).isoformat(timespec="microseconds") + "Z"


class _Acc:
    __slots__ = ("pending", "x")

    def __init__(self, x: Any) -> None:
        self.x = x
        self.pending: list[tuple[int, Any]] | None = None


def _pending_key(p: tuple[int, Any]) -> int:
    return p[0]


class _AggKernel(Kernel):
    """What every event-aggregate kernel shares: its measure, the extractor of the
    measured value, and how a time-valued measure reads as an instant."""

    __slots__ = ("extract", "measure")

    def __init__(self, k: int, spec: EventAggregate) -> None:
        super().__init__(k, 0 if spec.measure in ("count", "sum", "distinct") else None)
        self.measure = spec.measure
        self.extract = make_extractor(spec.measure, spec.of)

    def time_value(self, st: ProfileState) -> int | None:
        v = st.vals[self.k]
        return v if self.measure in TIME_MEASURES else None

    def json_value(self, st: ProfileState) -> Any:
        v = st.vals[self.k]
        return _json_time(v) if self.measure in TIME_MEASURES else v


class AllTimeAgg(_AggKernel):
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
            if len(memo) >= _CACHE_MAX:
                memo.clear()
            memo[cur] = r
        return r

    return flips


class SequenceKernel(Kernel):
    """Per step, the sorted times of matching events that are (or will be) in the window;
    the greedy earliest chain is recomputed only when it can flip (an event enters while
    unmatched, or leaves while matched).  Without a relative window a match is final.
    While unmatched, leaving events cannot flip anything: they are pruned lazily and the
    only expiry wake-up is when the last one leaves (to free the state).

    Per profile, one int64 array holds it all: ``[entered_0..entered_{n-1},
    len_0..len_{n-1}, times of step 0, times of step 1, ...]``; of each step's sorted
    times the first ``entered_i`` are in the window, the rest wait to enter."""

    __slots__ = ("frm", "n", "since", "span", "to", "until")

    def __init__(self, k: int, spec: SequenceMatch) -> None:
        super().__init__(k, False)
        self.n = len(spec.steps)
        self.to, self.frm, self.since, self.until = window_offsets(spec.window)
        self.span = spec.span.us if spec.span is not None else None

    def _start(self, d: array[int], i: int) -> int:
        """Where step ``i``'s times begin in the packed array."""
        n = self.n
        s = 2 * n
        for j in range(n, n + i):
            s += d[j]
        return s

    def _prune(self, d: array[int], lim: int) -> bool:
        """Drop entered times <= ``lim`` of every step; True if any left."""
        n = self.n
        s = 2 * n
        left = False
        for i in range(n):
            h = d[i]
            if h and d[s] <= lim:
                drop = bisect_right(d, lim, s, s + h) - s
                del d[s : s + drop]
                d[i] = h - drop
                d[n + i] -= drop
                left = True
            s += d[n + i]
        return left

    def insert(
        self, st: ProfileState, ts: int, name: str, fields: Mapping[str, Any], now: int, arg: int
    ) -> int:
        k = self.k
        if self.frm is None:
            if st.vals[k] is True or ts < self.since or ts >= self.until:
                return R_NONE
        elif ts <= now - self.frm:
            return R_NONE
        n = self.n
        d = st.data[self.slot]
        if d is None:
            d = st.data[self.slot] = array("q", (0,)) * (2 * n)
        elif self.frm is not None and not st.vals[k]:
            self._prune(d, now - self.frm)
        s = self._start(d, arg)
        ln = d[n + arg]
        pos = bisect_left(d, ts, s, s + ln)
        if pos < s + ln and d[pos] == ts:
            return R_NONE
        if arg == 0 and self.frm is None and self.span is None:
            # only the earliest first step matters when nothing ever leaves
            if ln:
                if d[s] <= ts:
                    return R_NONE
                del d[s : s + ln]
                d[0] = 0
                d[n] = 0
            pos = s
        d.insert(pos, ts)
        d[n + arg] += 1
        if ts > now - self.to:
            return R_REWAKE
        d[arg] += 1
        wake = R_REWAKE if pos == s else R_NONE
        if st.vals[k]:
            return wake
        if self._matched(d):
            st.vals[k] = True
            if self.frm is None:
                st.data[self.slot] = None
            return R_EVENT | R_REWAKE
        return wake

    def _matched(self, d: array[int]) -> bool:
        n = self.n
        starts = [2 * n]
        for i in range(n, 2 * n - 1):
            starts.append(starts[-1] + d[i])
        s0 = starts[0]
        span = self.span
        for idx in range(s0, s0 + d[0]):
            s = cur = d[idx]
            for i in range(1, n):
                si = starts[i]
                end = si + d[i]
                j = bisect_right(d, cur, si, end)
                if j >= end:
                    return False
                cur = d[j]
            if span is None or cur - s <= span:
                return True
        return False

    def advance(self, st: ProfileState, now: int) -> int:
        k = self.k
        d = st.data[self.slot]
        if d is None:
            return R_NONE
        n = self.n
        entered = False
        s = 2 * n
        for i in range(n):
            h0 = d[i]
            ln = d[n + i]
            h = bisect_right(d, now - self.to, s + h0, s + ln) - s
            if h > h0:
                entered = True
                d[i] = h
            s += ln
        left = self.frm is not None and self._prune(d, now - self.frm)
        matched = bool(st.vals[k])
        r = R_NONE
        if (matched and left) or (not matched and entered):
            now_matched = self._matched(d)
            if now_matched != matched:
                st.vals[k] = now_matched
                r = R_WINDOW if left or self.to else R_EVENT
                if now_matched and self.frm is None:
                    st.data[self.slot] = None
                    return r
        if len(d) == 2 * n:
            st.data[self.slot] = None
        return r

    def deadline(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d is None:
            return NEVER
        n = self.n
        out = NEVER
        last = -NEVER
        matched = st.vals[self.k]
        s = 2 * n
        for i in range(n):
            hi = d[i]
            ln = d[n + i]
            if hi and self.frm is not None:
                if matched:
                    out = min(out, d[s] + self.frm)
                else:
                    last = max(last, d[s + hi - 1] + self.frm)
            if hi < ln:
                out = min(out, d[s + hi] + self.to)
            s += ln
        if last > -NEVER:
            out = min(out, max(last, now + 1))
        return out


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
        t = _as_time(fields.get(p.path, MISSING))
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
        return _json_time(v) if timed else v


WriteKey = tuple[int, str]
"""``(timestamp µs, message id)``: the order of trait writes (last wins)."""


class _Trait:
    """A trait with writes stamped in the future waiting (otherwise the slot holds just
    the ``WriteKey`` of the write in effect, shared by every trait of one message)."""

    __slots__ = ("pending", "w")

    def __init__(self, w: WriteKey | None) -> None:
        self.w = w
        self.pending: list[tuple[WriteKey, Any]] = []


def _pending_write(p: tuple[WriteKey, Any]) -> WriteKey:
    return p[0]


class TraitKernel(Kernel):
    """Latest write by (timestamp, message id) at or before now, plus writes stamped
    in the future.  Per profile the slot holds the write key in effect (or a ``_Trait``
    while future writes wait), the value lives in ``vals``."""

    __slots__ = ("name",)

    def __init__(self, k: int, name: str) -> None:
        super().__init__(k, MISSING)
        self.name = name

    def write(self, st: ProfileState, w: WriteKey, value: Any, now: int) -> int:
        d = st.data[self.slot]
        if w[0] > now:
            if d.__class__ is not _Trait:
                d = st.data[self.slot] = _Trait(d)
            insort(d.pending, (w, value), key=_pending_write)
            return R_REWAKE
        # a write that changes nothing (an identify re-sending a trait) leaves the
        # wake-up as it was: it is still the first instant the value can flip after now
        r = self._take(st, d, w, value)
        return r | R_REWAKE if r else R_NONE

    def _take(self, st: ProfileState, d: Any, w: WriteKey, value: Any) -> int:
        pending = d.__class__ is _Trait
        cur = d.w if pending else d
        if cur is not None and w <= cur:
            return R_NONE
        if pending:
            d.w = w
        else:
            st.data[self.slot] = w
        k = self.k
        old = st.vals[k]
        new = st.vals[k] = MISSING if value is None else value
        return R_NONE if same_value(old, new) else R_TRAIT

    def advance(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d.__class__ is not _Trait:
            return R_NONE
        r = R_NONE
        p = d.pending
        while p and p[0][0][0] <= now:
            w, value = p.pop(0)
            r = max(r, self._take(st, d, w, value))
        if not p:
            st.data[self.slot] = d.w
        return r

    def deadline(self, st: ProfileState, now: int) -> int:
        d = st.data[self.slot]
        if d.__class__ is not _Trait or not d.pending:
            return NEVER
        first: int = d.pending[0][0][0]
        return first

    def time_value(self, st: ProfileState) -> int | None:
        """The value read as an instant (parsed on demand: a trait's value rarely changes,
        and keeping the parsed instant would cost every profile memory)."""
        t = _as_time(st.vals[self.k])
        return None if t is None else to_us(t)


class ConstantKernel(Kernel):
    """Static-segment membership and bucket draws: fixed when the state is created."""

    __slots__ = ()
