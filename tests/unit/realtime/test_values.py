"""Compiled value tests and predicates answer as the interpreter does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from segflow.model.definition import Comparison, Duration, PropertyPredicate
from segflow.model.history import MISSING
from segflow.model.time import from_us, to_us
from segflow.plan.interpret import compare_value
from segflow.realtime.values import compile_predicates, instant_test, number_test, value_test

values = st.one_of(
    st.sampled_from([MISSING, None, True, False, 0, 1, 1.0, 2.5, -3, "PL", "pl", "", "12"]),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=3),
    st.lists(st.integers(0, 2), max_size=2),
)
comparisons = st.one_of(
    st.builds(Comparison, st.sampled_from(["eq", "ne"]), st.sampled_from([1.0, "PL", True, 0.0])),
    st.builds(Comparison, st.sampled_from(["gt", "gte", "lt", "lte"]), st.sampled_from([0.0, 1.0])),
    st.just(Comparison("between", (0.0, 2.0))),
    st.builds(
        Comparison,
        st.sampled_from(["in", "not_in"]),
        st.sampled_from([("PL", 1.0), (True,), ("", "pl")]),
    ),
    st.builds(Comparison, st.sampled_from(["contains", "starts_with", "ends_with"]), st.just("P")),
    st.builds(Comparison, st.sampled_from(["exists", "not_exists"])),
    st.builds(Comparison, st.sampled_from(["before", "after"]), st.just(datetime(2026, 1, 1))),
)


@given(cmp=comparisons, vs=st.lists(values, min_size=1, max_size=6))
def test_memoised_value_test_equals_compare_value(cmp: Comparison, vs: list[Any]) -> None:
    test = value_test(cmp)
    at = datetime(2030, 1, 1)
    for v in vs + vs:
        assert test(v) == compare_value(v, cmp, at), (v, cmp)


bounds = st.one_of(
    st.integers(-3, 3), st.floats(-5, 5), st.sampled_from([float("inf"), -float("inf")])
)
numbers = st.one_of(st.integers(-5, 5), st.floats(-6, 6), st.integers(-(2**40), 2**40))


@given(
    cmp=st.one_of(
        st.builds(Comparison, st.sampled_from(["gt", "gte", "lt", "lte", "eq", "ne"]), bounds),
        st.builds(Comparison, st.just("between"), st.tuples(bounds, bounds).map(sorted).map(tuple)),
        comparisons,
    ),
    vs=st.lists(numbers, min_size=1, max_size=6),
)
def test_number_tests_equal_compare_value_on_counts_and_sums(
    cmp: Comparison, vs: list[Any]
) -> None:
    """Counts, sums and distinct counts are always an int or a float: there the plain
    comparisons give the interpreter's answers (other operators fall back)."""
    test = number_test(cmp)
    for v in vs:
        assert test(v) == compare_value(v, cmp, datetime(2030, 1, 1)), (v, cmp)


@given(
    op=st.sampled_from(["within_last", "older_than"]),
    span=st.integers(0, 3).map(lambda d: Duration(d * 86_400_000_000)),
    offsets=st.lists(st.integers(-4 * 86_400_000_000, 86_400_000_000), min_size=1, max_size=5),
    other=st.sampled_from([MISSING, None, 3, 2.5, True, "", "not a date", "2026-13-01"]),
    zone=st.sampled_from(["", "Z", "+02:00"]),
)
def test_instant_test_equals_compare_value(
    op: str, span: Duration, offsets: list[int], other: Any, zone: str
) -> None:
    """A date trait compared with ``within_last``/``older_than``: parsed once, compared
    in integer µs, the interpreter's answer at every instant, the boundaries included."""
    test = instant_test(Comparison(op, span))  # type: ignore[arg-type]
    t = to_us(datetime(2026, 6, 1, 12))
    values = [other, *(from_us(t + o).isoformat() + zone for o in offsets)]
    for v in values + values:
        for at in (t, t + span.us, t - span.us, t + 1):
            assert test(v, at) == compare_value(v, Comparison(op, span), from_us(at)), (v, at)  # type: ignore[arg-type]


def test_value_test_keeps_bool_and_number_apart() -> None:
    test = value_test(Comparison("eq", 1.0))
    assert test(1) and test(1.0) and not test(True)
    assert not value_test(Comparison("eq", True))(1)


def test_compiled_predicates_hold_on_the_same_event() -> None:
    pred = compile_predicates(
        [
            PropertyPredicate("properties.category", Comparison("eq", "shoes")),
            PropertyPredicate("properties.price", Comparison("gt", 5.0)),
        ]
    )
    assert pred is not None
    assert pred({"properties.category": "shoes", "properties.price": 6})
    assert not pred({"properties.category": "shoes"})
    assert compile_predicates([]) is None
