"""The real-time evaluator: a pure, deterministic state machine per profile.

``compile_engine(plan)`` turns the feature plan (the one the batch evaluator compiles
to SQL) into routing tables (event name -> compiled filter -> kernels), one kernel per
feature (shared by every segment that reads it) and one function per segment formula;
value semantics are the interpreter's own (``compare_value``/``compare_time``).
Per profile it then offers ``apply`` (an event), ``set_trait`` (a trait write),
``advance`` (time passes) and ``next_deadline``; each returns the membership changes
it causes, with the exact instant and the reason.  No I/O, no wall clock.

Instants and order:

* A state has a *watermark*: the latest instant it has been evaluated at (the latest
  in-order input, or the latest deadline it fired).  Changes are emitted in
  non-decreasing ``at`` per profile.
* An event with ``watermark <= ts <= now`` is in order: deadlines before ``ts`` fire
  first (each at its own instant, reason ``window_expired``), then the event is applied
  *at ts*, together with any deadline falling exactly on ts (one evaluation, so no
  exit-and-re-enter pair at one instant).
* A late event (``ts < watermark``) is folded into the state incrementally (every
  kernel can insert out of order, because it keeps whatever can still matter from
  ``now`` on) and memberships are re-evaluated *as of now*, reason ``event``.
* An event from the future (``ts > now``) waits inside its kernels; it takes effect
  at ``ts`` through ``advance`` (reason ``event``; ``window_expired`` when it enters an
  ``Ago`` window later).  Trait writes follow the same rules (reason ``trait_changed``).

``rebuild`` builds a state from a full history as of an instant, for merges and
definition changes; the ``RealtimeRunner`` in ``segflow.realtime.timers`` hosts many
states with a timer queue.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias

from segflow.model.bucket import bucket_of
from segflow.model.changes import BY_CODE, Reason
from segflow.model.definition import (
    TIME_MEASURES,
    Absolute,
    Comparison,
    EventFilter,
    filter_canonical,
    window_canonical,
)
from segflow.model.history import MISSING, Event, TraitWrite
from segflow.model.time import format_instant, from_us, to_us
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
    StaticMembership,
    TraitValue,
)
from segflow.plan.planner import Plan
from segflow.realtime.state import (
    NEVER,
    R_EVENT,
    R_REWAKE,
    R_TRAIT,
    R_WINDOW,
    TIME_RELATIVE_OPS,
    AllTimeAgg,
    ConstantKernel,
    FieldsPredicate,
    GenericKernel,
    Kernel,
    ProfileState,
    SequenceKernel,
    TraitKernel,
    WriteKey,
    count_flips,
    instant_test,
    number_expr,
    number_test,
    split_filter,
    value_test,
)
from segflow.realtime.windows import WindowAgg, WindowGroup


# The engine's internal record, converted to LoggedChange once at the boundary
# (segflow.service.live).
class Change(NamedTuple):
    """One membership flip: ``at`` is the exact instant the condition flipped."""

    segment_id: str
    profile_id: str
    entered: bool
    at: datetime
    reason: Reason


Leaf: TypeAlias = Callable[[list[Any], int], bool]
Route: TypeAlias = tuple[FieldsPredicate | None, tuple[tuple[Kernel, int], ...]]


def _true(_v: list[Any], _t: int) -> bool:
    return True


def _false(_v: list[Any], _t: int) -> bool:
    return False


def _none_is_missing(test: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: test(MISSING if x is None else x)


def _walk(f: Formula) -> Iterable[Formula]:
    yield f
    if isinstance(f, FAll | FAny):
        for i in f.items:
            yield from _walk(i)
    elif isinstance(f, FNot | FRef):
        yield from _walk(f.item)


def _time_expr(x: str, cmp: Comparison) -> str:
    """``compare_time`` on an instant in µs (``x``, None: no value) at ``t`` (µs) as a
    Python expression: integer arithmetic, exact, no datetimes on the hot path."""
    op = cmp.op
    if op == "exists":
        return f"({x} is not None)"
    if op == "not_exists":
        return f"({x} is None)"
    if op == "within_last":
        return f"({x} is not None and t - {cmp.value.us} < {x} <= t)"
    if op == "older_than":
        return f"({x} is not None and {x} <= t - {cmp.value.us})"
    if op in ("before", "after"):
        sign = "<" if op == "before" else ">"
        return f"({x} is not None and {x} {sign} {to_us(cmp.value)})"
    raise ValueError(f"{op} does not apply to a time value")


class ProfileEngine:
    """A plan compiled for per-profile incremental evaluation (immutable, shareable)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.keys: list[str] = list(plan.features)
        self.index: dict[str, int] = {key: i for i, key in enumerate(self.keys)}
        self.segment_ids: list[str] = sorted(plan.formulas)
        self._seg_index = {sid: i for i, sid in enumerate(self.segment_ids)}

        offsets: dict[int, set[int]] = {}
        cmps: dict[int, set[Comparison]] = {}
        buckets: dict[tuple[str, float, float], int] = {}
        for f in {n for sid in self.segment_ids for n in _walk(plan.formulas[sid])}:
            if isinstance(f, FCompare):
                cmps.setdefault(self.index[f.feature], set()).add(f.cmp)
            if isinstance(f, FCompare) and f.cmp.op in TIME_RELATIVE_OPS:
                k = self.index[f.feature]
                d = f.cmp.value.us
                if isinstance(plan.features[f.feature], TraitValue):
                    offsets.setdefault(k, set()).update((0, d))
                else:
                    offsets.setdefault(k, set()).add(d)
            elif isinstance(f, FAbandoned):
                offsets.setdefault(self.index[f.last], set()).add(f.wait.us)
        n = len(self.keys)
        for f in (x for sid in self.segment_ids for x in _walk(plan.formulas[sid])):
            if isinstance(f, FBucket):
                buckets.setdefault((f.salt, f.from_, f.to), n + len(buckets))
        self._buckets = buckets
        self.offsets: list[tuple[int, ...]] = [tuple(sorted(offsets.get(k, ()))) for k in range(n)]

        self.kernels: list[Kernel] = []
        self.traits: dict[str, TraitKernel] = {}
        self._static: dict[int, str] = {}
        routes: dict[str, dict[int, tuple[FieldsPredicate | None, list[tuple[Kernel, int]]]]] = {}

        def route(
            names: Iterable[str], pred: FieldsPredicate | None, kern: Kernel, arg: int
        ) -> None:
            for name in names:
                by_pred = routes.setdefault(name, {})
                slot = by_pred.setdefault(id(pred), (pred, []))
                slot[1].append((kern, arg))

        windows: dict[EventFilter, list[WindowAgg]] = {}
        for k, key in enumerate(self.keys):
            feat = plan.features[key]
            kern: Kernel
            if isinstance(feat, EventAggregate):
                fixed, timed = split_filter(feat.filter)
                if timed or feat.measure == "top":  # top: no incremental kernel
                    kern = GenericKernel(k, feat)
                    route(feat.filter.names, None, kern, 0)
                elif feat.window is None or isinstance(feat.window, Absolute):
                    kern = AllTimeAgg(k, feat)
                    route(feat.filter.names, fixed, kern, 0)
                else:
                    win = kern = WindowAgg(k, feat)
                    if feat.measure == "count":
                        tests = [value_test(c) for c in sorted(cmps.get(k, ()), key=repr)]
                        win.flips = count_flips(tests)
                    windows.setdefault(feat.filter, []).append(win)
            elif isinstance(feat, SequenceMatch):
                if any(split_filter(s)[1] for s in feat.steps):
                    kern = GenericKernel(k, feat)
                    route(sorted({n for s in feat.steps for n in s.names}), None, kern, 0)
                else:
                    kern = SequenceKernel(k, feat)
                    for i, step in enumerate(feat.steps):
                        route(step.names, split_filter(step)[0], kern, i)
            elif isinstance(feat, CartTotal):
                kern = GenericKernel(k, feat)
                route(sorted({n for f in feat.filters for n in f.names}), None, kern, 0)
            elif isinstance(feat, TraitValue):
                kern = TraitKernel(k, feat.name)
                self.traits[feat.name] = kern
            else:
                assert isinstance(feat, StaticMembership)
                kern = ConstantKernel(k, False)
                self._static[k] = feat.segment_id
            kern.offs = self.offsets[k]
            self.kernels.append(kern)
        slots = base = n + len(buckets)  # data slots follow the values in one list
        for kern in self.kernels:
            if isinstance(kern, AllTimeAgg | SequenceKernel | GenericKernel | TraitKernel):
                kern.slot = slots
                slots += 1
        for filt, members in windows.items():
            group = WindowGroup(members)
            group.slot = slots
            slots += 1
            route(filt.names, split_filter(filt)[0], group, 0)
        n_slots = slots - base
        self.routes: dict[str, tuple[Route, ...]] = {
            name: tuple((pred, tuple(targets)) for pred, targets in by_pred.values())
            for name, by_pred in routes.items()
        }

        self.formulas: list[Leaf] = [self._generate(plan.formulas[sid]) for sid in self.segment_ids]
        self.signature: list[tuple[Callable[[Any], bool], ...] | None] = [
            self._signature(k, cmps.get(k, set()), timed=bool(self.offsets[k])) for k in range(n)
        ]
        for members in windows.values():
            for win in members:
                win.tests = self.signature[win.k]
        deps: list[set[int]] = [set() for _ in range(n)]
        for s, sid in enumerate(self.segment_ids):
            for key in plan.features_of(sid):
                deps[self.index[key]].add(s)
        self.dependents: list[tuple[int, ...]] = [tuple(sorted(d)) for d in deps]
        self._empty: list[Any] = [kern.empty for kern in self.kernels]
        self._empty += [False] * len(buckets) + [None] * n_slots
        self._statics: dict[frozenset[str], frozenset[str]] = {}
        self._last_write: WriteKey = (NEVER, "")

    # ------------------------------------------------------------------ formulas

    def _signature(
        self, k: int, cmps: set[Comparison], *, timed: bool
    ) -> tuple[Callable[[Any], bool], ...] | None:
        """The tests through which formulas read feature ``k``, when they are all plain
        value comparisons: a value change that leaves every test's answer as it was
        cannot change a membership, so no segment needs re-evaluating (None: always)."""
        feat = self.plan.features[self.keys[k]]
        if timed or not cmps or any(c.op in TIME_RELATIVE_OPS for c in cmps):
            return None
        if isinstance(feat, EventAggregate):
            if feat.measure in TIME_MEASURES:
                return None
            if feat.measure not in ("count", "sum", "distinct"):
                tests = [value_test(c) for c in sorted(cmps, key=repr)]
                return tuple(_none_is_missing(test) for test in tests)
            return tuple(number_test(c) for c in sorted(cmps, key=repr))
        if not isinstance(feat, TraitValue):
            return None
        return tuple(value_test(c) for c in sorted(cmps, key=repr))

    def _generate(self, f: Formula) -> Leaf:
        """A segment's formula as one generated function over (feature values, instant
        in µs): the boolean structure and feature indexing inline, counts and sums
        compared inline, other value tests as memoised closures (one flat function
        is cheaper to call than a tree of closures)."""
        env: dict[str, Any] = {"_M": MISSING}

        def bind(obj: object) -> str:
            name = f"_f{len(env)}"
            env[name] = obj
            return name

        def expr(f: Formula) -> str:
            if isinstance(f, FAll | FAny):
                if not f.items:
                    return "True" if isinstance(f, FAll) else "False"
                joiner = " and " if isinstance(f, FAll) else " or "
                return "(" + joiner.join(expr(i) for i in f.items) + ")"
            if isinstance(f, FNot):
                return f"(not {expr(f.item)})"
            if isinstance(f, FRef):
                return expr(f.item)
            if isinstance(f, FFlag):
                return f"bool(v[{self.index[f.feature]}])"
            if isinstance(f, FBucket):
                return f"v[{self._buckets[(f.salt, f.from_, f.to)]}]"
            if isinstance(f, FCompare):
                k = self.index[f.feature]
                feat = self.plan.features[f.feature]
                if isinstance(feat, EventAggregate) and feat.measure in TIME_MEASURES:
                    return _time_expr(f"v[{k}]", f.cmp)
                if f.cmp.op in TIME_RELATIVE_OPS:
                    return f"{bind(instant_test(f.cmp))}(v[{k}], t)"
                if isinstance(feat, TraitValue):
                    return f"{bind(value_test(f.cmp))}(v[{k}])"
                if isinstance(feat, EventAggregate):
                    if feat.measure in ("count", "sum", "distinct"):
                        x = number_expr(f"v[{k}]", f.cmp, bind)
                        return x if x is not None else f"{bind(value_test(f.cmp))}(v[{k}])"
                    test = bind(value_test(f.cmp))
                    return f"{test}(_M if v[{k}] is None else v[{k}])"
            return f"{bind(self._compile(f))}(v, t)"

        body = expr(f)
        exec(f"def formula(v, t):\n    return {body}\n", env)
        fn: Leaf = env["formula"]
        return fn

    def _compile(self, f: Formula) -> Leaf:
        """A formula as one closure over (feature values, instant in µs)."""
        if isinstance(f, FAll | FAny):
            parts = [self._compile(i) for i in f.items]
            if not parts:
                return _true if isinstance(f, FAll) else _false
            if len(parts) == 1:
                return parts[0]
            if isinstance(f, FAll):
                if len(parts) == 2:
                    a, b = parts
                    return lambda v, t: a(v, t) and b(v, t)
                return lambda v, t: all(p(v, t) for p in parts)
            if len(parts) == 2:
                a, b = parts
                return lambda v, t: a(v, t) or b(v, t)
            return lambda v, t: any(p(v, t) for p in parts)
        if isinstance(f, FNot):
            inner = self._compile(f.item)
            return lambda v, t: not inner(v, t)
        if isinstance(f, FRef):
            return self._compile(f.item)
        if isinstance(f, FCompare):
            return self._compare(f)
        if isinstance(f, FAbandoned):
            kl, kf, wait = self.index[f.last], self.index[f.follow], f.wait.us

            def abandoned(v: list[Any], t: int) -> bool:
                last = v[kl]
                if last is None or last > t - wait:
                    return False
                follow = v[kf]
                return follow is None or follow <= last

            return abandoned
        if isinstance(f, FFlag):
            k = self.index[f.feature]
            return lambda v, t: bool(v[k])
        if isinstance(f, FBucket):
            kb = self._buckets[(f.salt, f.from_, f.to)]
            return lambda v, t: bool(v[kb])
        raise TypeError(f"cannot compile {f!r}")

    def _compare(self, f: FCompare) -> Leaf:
        k = self.index[f.feature]
        feat = self.plan.features[f.feature]
        cmp = f.cmp
        if isinstance(feat, EventAggregate) and feat.measure in TIME_MEASURES:
            env: dict[str, Any] = {}
            exec(f"def time_cmp(v, t):\n    return {_time_expr(f'v[{k}]', cmp)}\n", env)
            time_cmp: Leaf = env["time_cmp"]
            return time_cmp
        if cmp.op in TIME_RELATIVE_OPS:
            instant = instant_test(cmp)
            return lambda v, t: instant(v[k], t)
        test = value_test(cmp)
        if isinstance(feat, TraitValue):
            return lambda v, t: test(v[k])

        def value_cmp(v: list[Any], t: int) -> bool:
            x = v[k]
            return test(MISSING if x is None else x)

        return value_cmp

    # ------------------------------------------------------------------ states

    def new_state(
        self, profile_id: str, static_segments: Iterable[str] = frozenset()
    ) -> ProfileState:
        """An empty, not yet evaluated state; its first input evaluates every segment."""
        static = frozenset(static_segments)
        vals = self._empty.copy()
        for k, sid in self._static.items():
            vals[k] = sid in static
        draws: dict[str, float] = {}
        for (salt, lo, hi), kb in self._buckets.items():
            if salt not in draws:
                draws[salt] = bucket_of(profile_id, salt)
            vals[kb] = lo <= draws[salt] < hi
        static = self._statics.setdefault(static, static)
        return ProfileState(profile_id, vals, static)

    def memberships(self, st: ProfileState) -> set[str]:
        """Segments the profile is in as of its last evaluation."""
        ids = self.segment_ids
        return {ids[i] for i in self.member_indexes(st)}

    def member_indexes(self, st: ProfileState) -> list[int]:
        """Indexes (into ``segment_ids``) of the segments the profile is in."""
        out = []
        m = st.members
        while m:
            low = m & -m
            out.append(low.bit_length() - 1)
            m ^= low
        return out

    def is_member(self, st: ProfileState, segment_id: str) -> bool:
        return bool((st.members >> self._seg_index[segment_id]) & 1)

    def watermark(self, st: ProfileState) -> datetime | None:
        """The latest instant the state has been evaluated at (None: never)."""
        return None if st.fresh else from_us(st.now)

    def next_deadline(self, st: ProfileState) -> datetime | None:
        """Earliest instant at which a membership may change with no new input."""
        d = self.next_deadline_us(st)
        return None if d is None else from_us(d)

    def next_deadline_us(self, st: ProfileState) -> int | None:
        nxt = st.nxt
        return nxt if nxt < NEVER else None

    # ------------------------------------------------------------------ inputs

    def apply(self, st: ProfileState, event: Event, now: datetime) -> list[Change]:
        """Fold one event in (see the module docstring for in-order/late/future)."""
        return self.apply_us(st, to_us(event.timestamp), event.name, event.fields, to_us(now))

    def apply_us(
        self,
        st: ProfileState,
        ts: int,
        name: str | None,
        fields: Mapping[str, Any],
        now: int,
    ) -> list[Change]:
        """``apply`` on int microseconds (the hot path: no datetime unless a change)."""
        now = max(now, st.now)
        routes = self.routes.get(name) if name is not None else None
        out: list[Change] = []
        if ts > now:
            if st.fresh:
                self._step(st, now, out, R_EVENT)
            if routes is not None:
                assert name is not None
                at = st.now
                for pred, targets in routes:
                    if pred is None or pred(fields):
                        for kern, arg in targets:
                            if kern.grouped:
                                kern.insert_into(st, ts, fields, at, {})
                                continue
                            kern.insert(st, ts, name, fields, at, arg)
                            kern.rewake(st, at)
            return out
        if routes is None:
            if st.fresh:
                self._step(st, ts, out, R_EVENT)
            return out
        assert name is not None
        t = ts if ts >= st.now else now
        if st.nxt <= t:
            dirty = self._reach(st, t, out)
        else:
            st.now = t
            dirty = {}
        vals = st.vals
        signature = self.signature
        for pred, targets in routes:
            if pred is None or pred(fields):
                for kern, arg in targets:
                    if kern.grouped:
                        kern.insert_into(st, ts, fields, t, dirty)
                        continue
                    k = kern.k
                    old = vals[k]
                    r = kern.insert(st, ts, name, fields, t, arg)
                    if r:
                        if r & R_REWAKE:
                            kern.rewake(st, t)
                            r &= 3
                            if not r:
                                continue
                        tests = signature[k]
                        if tests is not None:
                            new = vals[k]
                            for test in tests:
                                if test(old) != test(new):
                                    break
                            else:
                                continue
                        if dirty.get(k, 0) < r:
                            dirty[k] = r
        if dirty or st.fresh:
            self._evaluate(st, t, dirty, out, R_EVENT)
        return out

    def _write_key(self, ts: int, message_id: str) -> WriteKey:
        """The key of a trait write; consecutive writes of one message (an identify
        setting five traits) share one tuple, so profiles keep one per message."""
        last = self._last_write
        if last[0] == ts and last[1] == message_id:
            return last
        w = self._last_write = (ts, message_id)
        return w

    def set_trait(self, st: ProfileState, write: TraitWrite, now: datetime) -> list[Change]:
        """Apply one trait write (``value=None`` clears the trait); same timing rules."""
        return self.set_trait_us(
            st, to_us(write.timestamp), write.message_id, write.key, write.value, to_us(now)
        )

    def set_trait_us(
        self, st: ProfileState, ts: int, message_id: str, key: str, value: Any, now: int
    ) -> list[Change]:
        now = max(now, st.now)
        kern = self.traits.get(key)
        out: list[Change] = []
        if ts > now:
            if st.fresh:
                self._step(st, now, out, R_TRAIT)
            if kern is not None:
                kern.write(st, self._write_key(ts, message_id), value, st.now)
                kern.rewake(st, st.now)
            return out
        if kern is None:
            if st.fresh:
                self._step(st, ts, out, R_TRAIT)
            return out
        t = ts if ts >= st.now else now
        if st.nxt <= t:
            dirty = self._reach(st, t, out)
        else:  # nothing due: most writes re-send a value the profile already has
            st.now = t
            dirty = {}
        r = kern.write(st, self._write_key(ts, message_id), value, t)
        if r:
            kern.rewake(st, t)
            r &= 3
            if r and dirty.get(kern.k, 0) < r:
                dirty[kern.k] = r
        if dirty or st.fresh:
            self._evaluate(st, t, dirty, out, R_TRAIT)
        return out

    def advance(self, st: ProfileState, t: datetime) -> list[Change]:
        """Let time pass up to ``t``: every deadline <= t fires at its own instant."""
        return self.advance_us(st, to_us(t))

    def advance_us(self, st: ProfileState, t: int) -> list[Change]:
        out: list[Change] = []
        if st.fresh:
            self._step(st, max(t, st.now), out, R_EVENT)
        else:
            self._fire_until(st, t, out, inclusive=True)
        return out

    def settle_us(self, st: ProfileState, t: int) -> list[Change]:
        """``advance_us`` to ``t``, and make ``t`` the watermark: an input stamped at or
        before ``t`` is late from then on (applied as of its ``now``).  A host that has
        evaluated every profile up to ``t`` settles one before giving it an input stamped
        earlier, so that input changes nothing in the past (a fresh state is only moved:
        its first input evaluates it)."""
        out = [] if st.fresh else self.advance_us(st, t)
        if st.now < t:
            st.now = t
        return out

    # ------------------------------------------------------------------ stepping

    def _step(self, st: ProfileState, t: int, out: list[Change], reason: int) -> None:
        """Evaluate at ``t`` with no input (a fresh state evaluates every segment)."""
        dirty = self._reach(st, t, out)
        if dirty or st.fresh:
            self._evaluate(st, t, dirty, out, reason)

    def _reach(self, st: ProfileState, t: int, out: list[Change]) -> dict[int, int]:
        """Fire deadlines before ``t``, then bring the ones at ``t`` due (returned as dirty
        features, for one evaluation together with the input at ``t``)."""
        nxt = self._fire_until(st, t, out, inclusive=False)
        dirty = self._due(st, t) if nxt == t else {}
        st.now = t
        return dirty

    def _fire_until(self, st: ProfileState, t: int, out: list[Change], *, inclusive: bool) -> int:
        """Fire every wake-up before (or up to) ``t``, each instant evaluated on its own;
        return the next wake-up left."""
        while True:
            d = st.nxt
            if d >= NEVER:
                return NEVER
            if d > t or (d == t and not inclusive):
                return d
            dirty = self._due(st, d)
            st.now = d
            self._evaluate(st, d, dirty, out, R_WINDOW)

    def _due(self, st: ProfileState, d: int) -> dict[int, int]:
        """Advance the features waking at ``d`` (the earliest wake-up); they are dirty."""
        dirty: dict[int, int] = {}
        kernels = self.kernels
        wake = st.wake
        assert wake is not None
        due = []  # the features of the due entries (the i-th entry is the i-th set bit)
        mask = st.wmask
        j = 0
        for i in [i for i, w in enumerate(wake) if w <= d]:
            while j < i:
                mask &= mask - 1
                j += 1
            due.append((mask & -mask).bit_length() - 1)
        for k in due:
            kern = kernels[k]
            r = kern.advance(st, d)
            dirty[k] = r or R_WINDOW
            kern.rewake(st, d)
        return dirty

    def _evaluate(
        self, st: ProfileState, t: int, dirty: Mapping[int, int], out: list[Change], fresh: int
    ) -> None:
        """Re-evaluate the segments that read a dirty feature; emit the flips at ``t``."""
        members = st.members
        vals = st.vals
        formulas = self.formulas
        if len(dirty) == 1 and not st.fresh:
            for k, r in dirty.items():
                for s in self.dependents[k]:
                    if (1 if formulas[s](vals, t) else 0) != (members >> s) & 1:
                        members ^= 1 << s
                if members != st.members:
                    self._emit(st, members, t, r, None, out)
            return
        why: dict[int, int]
        if st.fresh:
            st.fresh = False
            why = dict.fromkeys(range(len(self.segment_ids)), fresh)
        else:
            why = {}
            deps = self.dependents
            for k, r in dirty.items():
                for s in deps[k]:
                    if why.get(s, 0) < r:
                        why[s] = r
        for s in why:
            if (1 if formulas[s](vals, t) else 0) != (members >> s) & 1:
                members ^= 1 << s
        if members != st.members:
            self._emit(st, members, t, 0, why, out)

    def _emit(
        self,
        st: ProfileState,
        members: int,
        t: int,
        r: int,
        why: Mapping[int, int] | None,
        out: list[Change],
    ) -> None:
        """Set the new memberships and log the flips, by segment order, all at ``t``
        (one datetime), with reason ``r`` or the segment's own in ``why``."""
        flips = st.members ^ members
        st.members = members
        at = from_us(t)
        ids = self.segment_ids
        pid = st.profile_id
        while flips:
            low = flips & -flips
            flips ^= low
            s = low.bit_length() - 1
            reason = BY_CODE[r if why is None else why[s]]
            out.append(Change(ids[s], pid, bool(members & low), at, reason))

    # ------------------------------------------------------------------ rebuild

    def rebuild(
        self,
        profile_id: str,
        events: Iterable[Event],
        trait_writes: Iterable[TraitWrite],
        static_segments: Iterable[str],
        now: datetime,
    ) -> ProfileState:
        """A state from a profile's full history, evaluated as of ``now`` (no changes:
        the caller diffs memberships, e.g. after a merge or a definition change)."""
        return self.rebuild_us(
            profile_id,
            ((to_us(e.timestamp), e.name, e.fields) for e in events),
            ((to_us(w.timestamp), w.message_id, w.key, w.value) for w in trait_writes),
            static_segments,
            to_us(now),
        )

    def rebuild_us(
        self,
        profile_id: str,
        events: Iterable[tuple[int, str | None, Mapping[str, Any]]],
        trait_writes: Iterable[tuple[int, str, str, Any]],
        static_segments: Iterable[str],
        now: int,
    ) -> ProfileState:
        """``rebuild`` on raw inputs: events ``(ts, name, fields)``, trait writes
        ``(ts, message_id, key, value)``, instants in µs (bulk bootstrap from a store)."""
        st = self.new_state(profile_id, static_segments)
        t = now
        st.now = t
        routes_of = self.routes
        for ts, name, fields in events:
            routes = routes_of.get(name) if name is not None else None
            if routes is None:
                continue
            for pred, targets in routes:
                if pred is None or pred(fields):
                    for kern, arg in targets:
                        if kern.grouped:
                            kern.insert_into(st, ts, fields, t, None)
                        else:
                            kern.insert(st, ts, name, fields, t, arg)  # type: ignore[arg-type]
        for ts, message_id, key, value in trait_writes:
            kern_t = self.traits.get(key)
            if kern_t is not None:
                kern_t.write(st, self._write_key(ts, message_id), value, t)
        for kern in self.kernels:
            kern.rewake(st, t)
        self._evaluate(st, t, {}, [], R_EVENT)
        return st

    # ------------------------------------------------------------------ explain

    def explain(self, st: ProfileState, segment_id: str, t: datetime) -> dict[str, Any]:
        """Why the profile is (not) in ``segment_id`` at ``t``: the formula tree with each
        node's truth and, at the leaves, the feature values behind it (JSON-ready).

        ``t`` may not precede the watermark; a copy of the state is advanced to ``t`` (the
        given state is never modified)."""
        if segment_id not in self._seg_index:
            raise KeyError(f"unknown segment {segment_id!r}")
        t_us = to_us(t)
        if not st.fresh and t_us < st.now:
            raise ValueError(
                f"the state of {st.profile_id!r} is at {format_instant(from_us(st.now))};"
                f" it cannot explain the earlier instant {format_instant(t)}"
            )
        st = copy.deepcopy(st)
        self.advance_us(st, t_us)
        for kern in self.kernels:
            kern.advance(st, t_us)  # refresh values kept lazily (counts past their expiry)
        node = self._explain(self.plan.formulas[segment_id], st, t_us)
        return {
            "segment": segment_id,
            "profile": st.profile_id,
            "at": format_instant(t),
            "member": node["value"],
            "condition": node,
        }

    def _explain(self, f: Formula, st: ProfileState, t: int) -> dict[str, Any]:
        if isinstance(f, FAll | FAny):
            items = [self._explain(i, st, t) for i in f.items]
            truth = [i["value"] for i in items]
            op = "all" if isinstance(f, FAll) else "any"
            return {"op": op, "value": all(truth) if op == "all" else any(truth), "items": items}
        if isinstance(f, FNot):
            inner = self._explain(f.item, st, t)
            return {"op": "not", "value": not inner["value"], "item": inner}
        if isinstance(f, FRef):
            inner = self._explain(f.item, st, t)
            return {
                "op": "in_segment",
                "segment": f.segment_id,
                "value": inner["value"],
                "item": inner,
            }
        value = bool(self._compile(f)(st.vals, t))
        if isinstance(f, FCompare):
            return {
                "op": "compare",
                "value": value,
                "feature": self._describe(f.feature, st),
                "comparison": f.cmp.canonical(),
            }
        if isinstance(f, FAbandoned):
            return {
                "op": "abandoned",
                "value": value,
                "for": f.wait.canonical(),
                "trigger": self._describe(f.last, st),
                "followed_by": self._describe(f.follow, st),
            }
        if isinstance(f, FFlag):
            return {"op": "flag", "value": value, "feature": self._describe(f.feature, st)}
        assert isinstance(f, FBucket)
        return {
            "op": "bucket",
            "value": value,
            "salt": f.salt,
            "from": f.from_,
            "to": f.to,
            "bucket": bucket_of(st.profile_id, f.salt),
        }

    def _describe(self, key: str, st: ProfileState) -> dict[str, Any]:
        feat: Feature = self.plan.features[key]
        k = self.index[key]
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
        out["value"] = self.kernels[k].json_value(st)
        return out


def compile_engine(plan: Plan) -> ProfileEngine:
    """Compile a plan for the real-time evaluator."""
    return ProfileEngine(plan)


__all__ = ["Change", "ProfileEngine", "compile_engine"]
