"""Generic kernels: the activity interval of one event under a window and
time-relative predicates."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from segflow.model.definition import Comparison, Duration, PropertyPredicate
from segflow.model.time import from_us, to_us
from segflow.realtime.kernels.generic import _interval


@given(ts=st.integers(0, 10**15), to=st.integers(0, 10**9), extra=st.integers(1, 10**9))
def test_instants_round_trip(ts: int, to: int, extra: int) -> None:
    assert to_us(from_us(ts)) == ts
    assert _interval(to, to + extra, -(1 << 62), 1 << 62, ts, {}, ()) == (ts + to, ts + to + extra)


def test_time_predicates_bound_the_activity_interval() -> None:
    when = datetime(2026, 1, 5)
    fields = {"properties.when": "2026-01-05"}
    within = PropertyPredicate(
        "properties.when", Comparison("within_last", Duration(86_400_000_000))
    )
    older = PropertyPredicate("properties.when", Comparison("older_than", Duration(3_600_000_000)))
    ts = to_us(datetime(2026, 1, 1))
    assert _interval(0, None, -(1 << 62), 1 << 62, ts, fields, (within,)) == (
        to_us(when),
        to_us(when + timedelta(days=1)),
    )
    assert _interval(0, None, -(1 << 62), 1 << 62, ts, fields, (older,)) == (
        to_us(when + timedelta(hours=1)),
        1 << 62,
    )
    assert _interval(0, None, -(1 << 62), 1 << 62, ts, {"properties.when": 3}, (older,)) is None
