"""Segment metrics on a hand-computed base and against a per-segment Python loop."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.analytics.metrics import (
    Compared,
    MemberAggregates,
    index,
    net_growth,
    ratio,
    segment_metrics,
)

NAN = float("nan")


def test_a_small_base_by_hand() -> None:
    # five profiles; vip = {0, 1}, browsers = {3, 4}, empty = {}
    members = np.array(
        [[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 0]],
        dtype=bool,
    )
    agg = MemberAggregates(
        orders=[3, 1, 1, 0, 0],
        revenue=[300.0, 50.0, 20.0, 0.0, 0.0],
        sessions=[4, 2, 1, 6, 3],
        emails_delivered=[2, 2, 0, 1, 0],
        emails_opened=[2, 1, 0, 0, 0],
        emails_clicked=[1, 0, 0, 0, 0],
        clv=[500.0, 80.0, NAN, 10.0, NAN],
    )
    r = segment_metrics(members, ["vip", "browsers", "empty"], agg)
    everyone, vip, browsers, empty = r.everyone, *r.segments
    assert (everyone.size, everyone.orders, everyone.revenue, everyone.buyers) == (5, 5, 370.0, 3)
    assert everyone.conversion_rate == Compared(0.6, 0.6, 1.0)
    assert everyone.aov == Compared(74.0, 74.0, 1.0)
    assert everyone.repeat_purchase_rate.value == pytest.approx(1 / 3)
    assert everyone.open_rate is not None and everyone.open_rate.value == 0.6
    assert everyone.average_clv is not None and everyone.average_clv.value == pytest.approx(590 / 3)
    assert everyone.page_views_per_member is None and everyone.average_churn_risk is None

    assert (vip.size, vip.share, vip.orders, vip.revenue, vip.buyers, vip.repeat_buyers) == (
        2, 0.4, 4, 350.0, 2, 1,
    )  # fmt: skip
    assert vip.conversion_rate.value == 1.0
    assert vip.conversion_rate.index == pytest.approx(1 / 0.6)
    assert vip.aov.value == 87.5 and vip.aov.index == pytest.approx(87.5 / 74)
    assert vip.revenue_per_member.value == 175.0
    assert vip.revenue_per_member.index == pytest.approx(175 / 74)
    assert vip.repeat_purchase_rate.value == 0.5
    assert vip.repeat_purchase_rate.index == pytest.approx(1.5)
    assert vip.sessions_per_member is not None and vip.sessions_per_member.value == 3.0
    assert vip.open_rate is not None and vip.open_rate.value == 0.75
    assert vip.click_rate is not None and vip.click_rate.value == 0.25
    assert vip.average_clv is not None and vip.average_clv.value == 290.0

    assert browsers.conversion_rate.value == 0.0 and browsers.conversion_rate.index == 0.0
    assert browsers.aov == Compared(None, 74.0, None)  # no orders
    assert browsers.repeat_purchase_rate.value is None  # no buyers
    assert browsers.average_clv is not None and browsers.average_clv.value == 10.0

    assert (empty.size, empty.share, empty.orders, empty.revenue) == (0, 0.0, 0, 0.0)
    assert empty.conversion_rate == Compared(None, 0.6, None)
    assert empty.revenue_per_member.value is None and empty.average_clv is not None
    assert empty.average_clv.value is None
    json.dumps(r.as_dict(), allow_nan=False)


def test_index_is_none_when_everyone_is_zero() -> None:
    members = np.array([[1], [0]], dtype=bool)
    r = segment_metrics(members, ["s"], MemberAggregates(orders=[0, 0], revenue=[0.0, 0.0]))
    (s,) = r.segments
    assert s.conversion_rate == Compared(0.0, 0.0, None)
    assert ratio(1, 0) is None and index(1.0, 0.0) is None and index(None, 2.0) is None


def test_no_profiles_at_all() -> None:
    r = segment_metrics(np.zeros((0, 1), bool), ["s"], MemberAggregates(orders=[], revenue=[]))
    assert r.everyone.share is None and r.segments[0].conversion_rate.value is None
    json.dumps(r.as_dict(), allow_nan=False)


@st.composite
def bases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(0, 150))
    s = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    members = rng.random((n, s)) < draw(st.floats(0, 1))
    orders = rng.poisson(draw(st.floats(0, 3)), n)
    revenue = orders * rng.gamma(2.0, 30.0, n)
    return members, orders, revenue


@settings(max_examples=150, deadline=None)
@given(bases())
def test_matches_a_loop_over_members(case: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    members, orders, revenue = case
    r = segment_metrics(members, [f"s{j}" for j in range(members.shape[1])],
                        MemberAggregates(orders=orders, revenue=revenue))  # fmt: skip
    n = len(orders)
    base_conv = sum(1 for o in orders if o > 0) / n if n else None
    for j, seg in enumerate(r.segments):
        idx = [p for p in range(n) if members[p, j]]
        assert seg.size == len(idx)
        assert seg.orders == sum(int(orders[p]) for p in idx)
        assert seg.revenue == pytest.approx(sum(float(revenue[p]) for p in idx))
        buyers = [p for p in idx if orders[p] > 0]
        conv = len(buyers) / len(idx) if idx else None
        assert seg.conversion_rate.value == pytest.approx(conv)
        if conv is not None and base_conv:
            assert seg.conversion_rate.index == pytest.approx(conv / base_conv)
        else:
            assert seg.conversion_rate.index is None
        repeat = sum(1 for p in buyers if orders[p] >= 2)
        assert seg.repeat_purchase_rate.value == pytest.approx(
            repeat / len(buyers) if buyers else None
        )
    json.dumps(r.as_dict(), allow_nan=False)


def test_growth_over_periods() -> None:
    g = net_growth(10, [5, 0, 3], [2, 13, 0])
    assert g.size_start.tolist() == [10, 13, 0]
    assert g.net.tolist() == [3, -13, 3]
    assert g.size_end.tolist() == [13, 0, 3]
    assert g.as_dict()["growth_rate"] == [pytest.approx(0.3), -1.0, None]
    empty = net_growth(4, [], [])
    assert empty.size_end.tolist() == [] and empty.as_dict()["growth_rate"] == []


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 1000), st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50))))
def test_growth_adds_up(start: int, moves: list[tuple[int, int]]) -> None:
    ins, outs = [m[0] for m in moves], [m[1] for m in moves]
    ends = np.cumsum(np.array(ins, dtype=np.int64) - outs) + start
    if len(ends) and ends.min() < 0:
        with pytest.raises(ValueError):
            net_growth(start, ins, outs)
        return
    g = net_growth(start, ins, outs)
    assert g.size_end[-1:].tolist() == ([start + sum(ins) - sum(outs)] if moves else [])
    assert g.size_start[1:].tolist() == g.size_end[:-1].tolist()
    assert all(
        r is None or math.isclose(r, m / s0)
        for r, m, s0 in zip(g.as_dict()["growth_rate"], g.net, g.size_start, strict=True)
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: segment_metrics(np.zeros((2, 1), bool), ["a"], MemberAggregates([1], [1.0, 2.0])),
        lambda: segment_metrics(
            np.zeros((2, 1), bool), ["a", "b"], MemberAggregates([1, 1], [1, 2])
        ),
        lambda: segment_metrics(np.zeros((1, 1), bool), ["a"], MemberAggregates([NAN], [1.0])),
        lambda: net_growth(1, [1, 2], [1]),
        lambda: net_growth(1, [-1], [0]),
    ],
)
def test_bad_input_is_a_value_error(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
