"""Compiling a feature plan for the real-time evaluator: one kernel per feature,
routing tables from event names to kernels, and each segment's formula as code.

``CompiledPlan`` holds every table the engine reads on its hot path; the engine
(``segflow.realtime.engine``) is a compiled plan plus the per-profile inputs, and the
explain tree (``segflow.realtime.explain``) reads the plan's leaves through
``CompiledPlan.closure``.  Value semantics are the interpreter's own
(``compare_value``/``compare_time``), compiled to closures or inline expressions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from segflow.model.definition import (
    TIME_MEASURES,
    Absolute,
    Comparison,
    EventFilter,
)
from segflow.model.history import MISSING
from segflow.model.time import to_us
from segflow.plan.features import (
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
from segflow.realtime.kernels.aggregates import AllTimeAgg
from segflow.realtime.kernels.base import Kernel
from segflow.realtime.kernels.generic import GenericKernel
from segflow.realtime.kernels.sequences import SequenceKernel
from segflow.realtime.kernels.traits import ConstantKernel, TraitKernel
from segflow.realtime.kernels.windows import WindowAgg, WindowGroup, count_flips
from segflow.realtime.values import (
    TIME_RELATIVE_OPS,
    FieldsPredicate,
    instant_test,
    number_expr,
    number_test,
    split_filter,
    value_test,
)

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


class CompiledPlan:
    """A plan compiled for per-profile incremental evaluation (immutable, shareable):
    kernels, routes, formula functions, and which segments read which feature."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.keys: list[str] = list(plan.features)
        self.index: dict[str, int] = {key: i for i, key in enumerate(self.keys)}
        self.segment_ids: list[str] = sorted(plan.formulas)
        self.seg_index = {sid: i for i, sid in enumerate(self.segment_ids)}

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
        self.buckets = buckets
        """The value index of each bucket draw ``(salt, from, to)`` (after the features)."""
        self.offsets: list[tuple[int, ...]] = [tuple(sorted(offsets.get(k, ()))) for k in range(n)]

        self.kernels: list[Kernel] = []
        self.traits: dict[str, TraitKernel] = {}
        self.static_features: dict[int, str] = {}
        """Feature index -> the static segment whose membership it holds."""
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
                self.static_features[k] = feat.segment_id
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
        self.initial: list[Any] = [kern.empty for kern in self.kernels]
        """A new state's values and data slots (copied per profile)."""
        self.initial += [False] * len(buckets) + [None] * n_slots

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
                return f"v[{self.buckets[(f.salt, f.from_, f.to)]}]"
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
            return f"{bind(self.closure(f))}(v, t)"

        body = expr(f)
        exec(f"def formula(v, t):\n    return {body}\n", env)
        fn: Leaf = env["formula"]
        return fn

    def closure(self, f: Formula) -> Leaf:
        """A formula as one closure over (feature values, instant in µs)."""
        if isinstance(f, FAll | FAny):
            parts = [self.closure(i) for i in f.items]
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
            inner = self.closure(f.item)
            return lambda v, t: not inner(v, t)
        if isinstance(f, FRef):
            return self.closure(f.item)
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
            kb = self.buckets[(f.salt, f.from_, f.to)]
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
