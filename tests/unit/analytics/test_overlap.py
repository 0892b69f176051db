"""Overlap against plain Python sets of member indices, from both input forms."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from segflow.analytics.overlap import (
    Combination,
    OverlapReport,
    Thresholds,
    WarningKind,
    overlap,
    overlap_packed,
    pack_members,
)


@st.composite
def memberships(draw: st.DrawFn, max_segments: int = 12) -> np.ndarray:
    s = draw(st.integers(1, max_segments))
    n = draw(st.integers(0, 300))
    dense = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    m = np.random.default_rng(seed).random((n, s)) < dense
    # a few copies and subsets, so containment and duplicates occur
    if s > 1 and draw(st.booleans()):
        m[:, 1] = m[:, 0] & draw(hnp.arrays(np.bool_, n))
    return m


def _ids(m: np.ndarray) -> list[str]:
    return [f"seg{j}" for j in range(m.shape[1])]


def _naive(m: np.ndarray) -> tuple[list[set[int]], Counter[frozenset[int]]]:
    sets = [set(np.flatnonzero(m[:, j]).tolist()) for j in range(m.shape[1])]
    combos: Counter[frozenset[int]] = Counter()
    for p in range(m.shape[0]):
        key = frozenset(j for j, members in enumerate(sets) if p in members)
        if key:
            combos[key] += 1
    return sets, combos


@settings(max_examples=150, deadline=None)
@given(memberships())
def test_counts_equal_set_intersections(m: np.ndarray) -> None:
    ids = _ids(m)
    r = overlap(m, ids, top=10**6)
    sets, combos = _naive(m)
    s = len(ids)
    for i in range(s):
        for j in range(s):
            both = len(sets[i] & sets[j])
            union = len(sets[i] | sets[j])
            assert r.intersections[i, j] == both
            if sets[i]:
                assert r.row_share[i, j] == pytest.approx(both / len(sets[i]))
            else:
                assert np.isnan(r.row_share[i, j])
            if union:
                assert r.jaccard[i, j] == pytest.approx(both / union)
        others = set().union(*(sets[k] for k in range(s) if k != i))
        assert r.exclusive[i] == len(sets[i] - others)
    assert r.sizes.tolist() == [len(x) for x in sets]
    assert r.in_any == len(set().union(*sets))
    assert r.distinct_combinations == len(combos)
    got = {frozenset(ids.index(x) for x in c.segments): c.count for c in r.top_combinations}
    assert got == dict(combos)


@settings(max_examples=150, deadline=None)
@given(memberships(max_segments=70), st.integers(0, 6))
def test_properties_and_the_packed_form(m: np.ndarray, top: int) -> None:
    ids = _ids(m)
    r = overlap(m, ids, top=top)
    assert np.array_equal(r.intersections, r.intersections.T)
    assert np.array_equal(r.jaccard, r.jaccard.T, equal_nan=True)
    assert np.array_equal(np.diagonal(r.intersections), r.sizes)
    assert (r.intersections <= np.minimum.outer(r.sizes, r.sizes)).all()
    assert len(r.top_combinations) == min(top, r.distinct_combinations)
    counts = [c.count for c in r.top_combinations]
    assert counts == sorted(counts, reverse=True)
    everything = overlap(m, ids, top=r.distinct_combinations)
    assert sum(c.count for c in everything.top_combinations) == r.in_any
    assert everything.top_combinations[:top] == r.top_combinations
    packed = overlap_packed(pack_members(m), m.shape[0], ids, top=top)
    _same(packed, r)
    json.dumps(r.as_dict(), allow_nan=False)


def _same(a: OverlapReport, b: OverlapReport) -> None:
    assert a.as_dict() == b.as_dict()


def test_pack_members_is_packbits_per_segment() -> None:
    m = np.random.default_rng(1).random((1003, 21)) < 0.3
    assert np.array_equal(pack_members(m), np.packbits(m.T, axis=1, bitorder="little"))


def test_top_combinations_break_ties_by_code() -> None:
    # profiles: {a}, {b}, {a, b}, {c}, each once; {a, b} twice
    m = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
    r = overlap(m, ["a", "b", "c"], top=3)
    assert r.top_combinations == (
        Combination(("a", "b"), 2),
        Combination(("a",), 1),
        Combination(("b",), 1),
    )
    assert r.exclusive.tolist() == [1, 1, 1]


def test_warnings_follow_the_thresholds() -> None:
    n = 1000
    base = np.arange(n) < 500
    m = np.column_stack(
        [
            base,  # a: 500
            np.arange(n) < 520,  # b: a + 20, near-duplicate of a (Jaccard 500/520)
            np.arange(n) < 400,  # c: all in a and in b
            (np.arange(n) >= 990),  # d: 10 members
            np.zeros(n, dtype=bool),  # e: empty
        ]
    )
    ids = ["a", "b", "c", "d", "e"]
    r = overlap(m, ids, thresholds=Thresholds(contained=0.9, near_duplicate=0.95, min_size=50))
    found = {(w.kind, w.segments) for w in r.warnings}
    assert (WarningKind.NEAR_DUPLICATE, ("a", "b")) in found
    assert (WarningKind.CONTAINED, ("a", "b")) not in found  # reported once, as a duplicate
    assert (WarningKind.CONTAINED, ("c", "a")) in found
    assert (WarningKind.CONTAINED, ("c", "b")) in found
    assert (WarningKind.CONTAINED, ("a", "c")) not in found  # 400 of a's 500
    assert (WarningKind.TOO_SMALL, ("d",)) in found and (WarningKind.TOO_SMALL, ("e",)) in found
    assert not any("e" in w.segments and w.kind is not WarningKind.TOO_SMALL for w in r.warnings)
    at = Thresholds(contained=500 / 520, near_duplicate=1.0)
    exactly = {(w.kind, w.segments) for w in overlap(m[:, :2], ids[:2], thresholds=at).warnings}
    assert exactly == {(WarningKind.CONTAINED, ("a", "b"))}  # b's share in a is not above


def test_empty_inputs() -> None:
    r = overlap(np.zeros((0, 3), dtype=bool), ["a", "b", "c"])
    assert r.in_any == 0 and r.top_combinations == () and r.sizes.tolist() == [0, 0, 0]
    d = r.as_dict()
    assert d["jaccard"] == [[None] * 3] * 3
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize(
    "call",
    [
        lambda: overlap(np.zeros((4, 2), dtype=bool), ["a"]),
        lambda: overlap(np.zeros((4, 2), dtype=bool), ["a", "a"]),
        lambda: overlap(np.zeros((4, 0), dtype=bool), []),
        lambda: overlap_packed(np.zeros((2, 1), np.uint8), 9, ["a", "b"]),
        lambda: overlap_packed(np.full((1, 1), 0xFF, np.uint8), 5, ["a"]),
    ],
)
def test_bad_shapes_are_value_errors(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
