"""What kernels are compiled from: value tests, event predicates, measure extractors and
window offsets.

Each turns a piece of a definition into a plain closure or a tuple of ints once, at
compile time, so that the per-event work is a dict lookup or an integer comparison.
Value semantics stay the interpreter's (``segflow.plan.interpret``); time is int
microseconds since the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from segflow.model.definition import (
    Absolute,
    Ago,
    Comparison,
    EventFilter,
    PropertyPredicate,
    Window,
    Within,
    is_number,
)
from segflow.model.history import MISSING
from segflow.model.time import to_us
from segflow.plan.interpret import as_time, compare_value, value_kind

NEVER: Final = 1 << 62
"""No instant: no deadline, no end of a window (far beyond any datetime)."""

TIME_RELATIVE_OPS: Final = frozenset({"within_last", "older_than"})
"""Operators whose truth depends on the evaluation instant (not just on the value)."""

CACHE_MAX: Final = 4096
"""Entries a memo keeps before it starts over (bounded memory for unbounded values)."""


_SCALAR_TYPES: Final = frozenset({int, float, bool, type(None), type(MISSING)})
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
            if len(cache) >= CACHE_MAX:
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
            when = as_time(v)
            us = None if when is None else to_us(when)
            if len(cache) >= CACHE_MAX:
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
            kind = value_kind(v)
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
