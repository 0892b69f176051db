"""Window kernels: when a count's comparisons can next flip."""

from __future__ import annotations

from segflow.model.definition import Comparison
from segflow.realtime.kernels.windows import count_flips
from segflow.realtime.values import value_test


def test_count_flips_finds_the_next_count_with_another_answer() -> None:
    flips = count_flips([value_test(Comparison("gte", 3.0)), value_test(Comparison("lt", 1.0))])
    assert flips(5) == 2  # gte 3 turns false at 2
    assert flips(2) == 0  # lt 1 turns true at 0
    assert flips(0) == -1
    assert count_flips([value_test(Comparison("in", (1.0, 3.0)))])(5) == 3
