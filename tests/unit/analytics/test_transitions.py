"""Transitions against a plain count of (place at A, place at B) pairs, and durations
against the standard library's median."""

from __future__ import annotations

import json
import statistics
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.analytics.transitions import NEVER, Flow, time_to_enter, transitions

STAGES = ["new", "active", "at_risk", "lost"]


@st.composite
def places(draw: st.DrawFn) -> tuple[list[str], list[int], list[int]]:
    k = draw(st.integers(1, len(STAGES)))
    n = draw(st.integers(0, 200))
    place = st.integers(-1, k - 1)
    return (
        STAGES[:k],
        draw(st.lists(place, min_size=n, max_size=n)),
        draw(st.lists(place, min_size=n, max_size=n)),
    )


@settings(max_examples=200, deadline=None)
@given(places())
def test_matrix_counts_pairs(case: tuple[list[str], list[int], list[int]]) -> None:
    stages, a, b = case
    r = transitions(stages, a, b)
    k = len(stages)
    pairs = Counter(zip(a, b, strict=True))
    for i in range(-1, k):
        for j in range(-1, k):
            assert r.counts[i if i >= 0 else k, j if j >= 0 else k] == pairs[(i, j)]
    at_a, at_b = Counter(a), Counter(b)
    assert r.at_a.tolist() == r.counts.sum(axis=1).tolist()
    assert r.at_a.tolist() == [at_a[i] for i in [*range(k), -1]]
    assert r.at_b.tolist() == [at_b[j] for j in [*range(k), -1]]
    assert r.counts.sum() == len(a)
    outside_both = pairs[(-1, -1)]
    assert sum(f.value for f in r.flows) == len(a) - outside_both
    assert all(f.value > 0 for f in r.flows)
    assert r.stayed + r.forward + r.backward + r.entered + r.exited + outside_both == len(a)
    assert r.forward == sum(v for (i, j), v in pairs.items() if 0 <= i < j)
    assert r.backward == sum(v for (i, j), v in pairs.items() if 0 <= j < i)
    for i, total in enumerate(r.at_a.tolist()):
        if total:
            assert r.row_share[i].sum() == pytest.approx(1.0)
        else:
            assert np.isnan(r.row_share[i]).all()
    json.dumps(r.as_dict(), allow_nan=False)


def test_a_small_lifecycle_by_hand() -> None:
    # new -> active twice, active -> lost, outside -> new, at_risk -> outside, outside stays
    a = [0, 0, 1, -1, 2, -1]
    b = [1, 1, 3, 0, -1, -1]
    r = transitions(STAGES, a, b)
    assert r.flows == (
        Flow("new", "active", 2),
        Flow("active", "lost", 1),
        Flow("at_risk", None, 1),
        Flow(None, "new", 1),
    )
    assert (r.stayed, r.forward, r.backward, r.entered, r.exited) == (0, 3, 0, 1, 1)
    d = r.as_dict()
    assert d["row_share"][0] == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert d["row_share"][3] == [None] * 5  # nobody was lost at A


@pytest.mark.parametrize(
    ("stages", "a", "b"),
    [
        (["x"], [0, 1], [0, 0]),
        (["x"], [0, -2], [0, 0]),
        (["x"], [0], [0, 0]),
        (["x", "x"], [0], [0]),
        ([], [], []),
        (["x"], [0.5], [0]),
    ],
)
def test_bad_places_are_value_errors(stages: list[str], a: list[float], b: list[int]) -> None:
    with pytest.raises(ValueError):
        transitions(stages, a, b)


instants = st.one_of(st.just(int(NEVER)), st.integers(0, 10**15))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(instants, instants), max_size=60))
def test_durations_match_the_median(pairs: list[tuple[int, int]]) -> None:
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    d = time_to_enter(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    kept = [y - x for x, y in pairs if x != NEVER and y != NEVER and y >= x]
    assert d.pairs == len(kept)
    assert d.b_before_a == sum(1 for x, y in pairs if x != NEVER and y != NEVER and y < x)
    if kept:
        assert d.median == pytest.approx(statistics.median(kept))
        assert d.mean == pytest.approx(statistics.fmean(kept))
        assert d.percentiles["p50"] == d.median
        cuts = statistics.quantiles(kept, n=4, method="inclusive") if len(kept) > 1 else kept * 3
        assert [d.percentiles["p25"], d.percentiles["p75"]] == pytest.approx([cuts[0], cuts[2]])
        values = [v for v in d.percentiles.values() if v is not None]
        assert values == sorted(values)
    else:
        assert d.median is None and set(d.percentiles.values()) == {None}
    json.dumps(d.as_dict(), allow_nan=False)


def test_durations_reject_mismatched_arrays() -> None:
    with pytest.raises(ValueError):
        time_to_enter([1, 2], [3])
    with pytest.raises(ValueError):
        time_to_enter([1], [3], percentiles=[101])
