"""RFM quintiles, ties and named groups, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segflow.traits.rfm import (
    GROUPS,
    quintile_scores,
    rfm_codes,
    rfm_group,
    rfm_group_index,
    rfm_scores,
)

RECENCY = [1, 5, 5, 10, 20, 30, 60, 90, 200, 400]
FREQUENCY = [1, 1, 1, 1, 1, 2, 2, 3, 5, 8]
MONETARY = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
# score = 1 + floor(5 * (customers with a strictly worse value) / 10)
R = [5, 4, 4, 4, 3, 3, 2, 2, 1, 1]  # the two 5-day customers both have 7 worse -> 4
F = [1, 1, 1, 1, 1, 3, 3, 4, 5, 5]  # five single-order customers all get 1
M = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_ten_customers_by_hand() -> None:
    r, f, m = rfm_scores(RECENCY, FREQUENCY, MONETARY)
    assert r.tolist() == R
    assert f.tolist() == F
    assert m.tolist() == M
    assert rfm_codes(r, f, m).tolist()[:3] == ["511", "411", "412"]


def test_scores_do_not_depend_on_row_order() -> None:
    order = np.random.default_rng(3).permutation(10)
    r, f, m = rfm_scores(
        np.array(RECENCY)[order], np.array(FREQUENCY)[order], np.array(MONETARY)[order]
    )
    assert r.tolist() == np.array(R)[order].tolist()
    assert f.tolist() == np.array(F)[order].tolist()
    assert m.tolist() == np.array(M)[order].tolist()


def test_recency_ties_within_a_day_and_cents() -> None:
    r, _, m = rfm_scores([3.2, 3.9, 10.0], [1, 1, 1], [10.001, 10.004, 5.0])
    assert r[0] == r[1]
    assert m[0] == m[1]


@given(st.lists(st.integers(0, 20), min_size=1, max_size=60))
def test_equal_values_equal_scores_and_monotone(values: list[int]) -> None:
    s = quintile_scores(values)
    assert s.min() >= 1 and s.max() <= 5
    for i, a in enumerate(values):
        for j, b in enumerate(values):
            if a == b:
                assert s[i] == s[j]
            if a < b:
                assert s[i] <= s[j]


@pytest.mark.parametrize(
    ("r", "f", "m", "group"),
    [
        (5, 5, 5, "Champions"),
        (5, 4, 3, "Champions"),
        (1, 1, 1, "Lost"),
        (5, 1, 1, "New Customers"),
        (4, 1, 1, "Promising"),
        (3, 3, 3, "Need Attention"),
        (1, 5, 5, "Can't Lose Them"),
        (2, 1, 2, "Hibernating"),
        (2, 3, 4, "At Risk"),
        (3, 1, 2, "About To Sleep"),
        (4, 4, 5, "Loyal Customers"),
        (5, 2, 3, "Potential Loyalists"),
    ],
)
def test_named_groups(r: int, f: int, m: int, group: str) -> None:
    assert rfm_group(r, f, m) == group
    idx = rfm_group_index(np.array([r]), np.array([f]), np.array([m]))
    assert GROUPS[int(idx[0])] == group


def test_every_group_is_reachable_and_bad_scores_fail() -> None:
    seen = {rfm_group(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    assert seen == set(GROUPS)
    with pytest.raises(ValueError, match="F score must be 1-5"):
        rfm_group(3, 0, 2)
    with pytest.raises(ValueError, match="NaN"):
        quintile_scores([1.0, float("nan")])
