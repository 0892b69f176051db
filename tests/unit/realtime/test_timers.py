"""Timer queue and clocks."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segflow.realtime import TimerQueue, VirtualClock, WallClock


def test_timers_pop_in_deadline_order_and_skip_rescheduled_entries() -> None:
    q = TimerQueue()
    q.schedule("a", 30)
    q.schedule("b", 10)
    q.schedule("c", 20)
    q.schedule("a", 5)  # the entry at 30 goes stale
    q.schedule("c", None)  # cleared
    assert len(q) == 2
    assert q.peek() == 5
    assert q.pop_due(4) is None
    assert q.pop_due(100) == (5, "a")
    assert q.pop_due(100) == (10, "b")
    assert q.pop_due(100) is None
    assert q.peek() is None
    assert len(q) == 0


def test_rescheduling_the_same_deadline_is_a_no_op_and_the_heap_stays_compact() -> None:
    q = TimerQueue()
    for i in range(5000):
        q.schedule("p", 10_000 + i)
        q.schedule("p", 10_000 + i)
    assert q.deadline("p") == 14_999
    assert q._entries < 2 * len(q) + 1025
    assert q.pop_due(20_000) == (14_999, "p")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.one_of(st.none(), st.integers(-(2**40), 2**40), st.integers(0, 2**27)),
            st.one_of(st.integers(-(2**40), 2**40), st.integers(0, 2**27)),
        ),
        max_size=60,
    )
)
def test_the_queue_fires_like_a_sorted_list_of_live_deadlines(
    ops: list[tuple[str, int | None, int]],
) -> None:
    """Against a model: after any schedules, clears and pops (deadlines spread over
    many slots and within one), ``pop_due(t)`` gives the least live ``(deadline,
    key)`` at or before ``t``."""
    q = TimerQueue()
    model: dict[str, int] = {}
    for key, deadline, t in ops:
        q.schedule(key, deadline)
        if deadline is None:
            model.pop(key, None)
        else:
            model[key] = deadline
        due = sorted((d, k) for k, d in model.items() if d <= t)
        got = q.pop_due(t)
        assert got == (due[0] if due else None)
        if got is not None:
            del model[got[1]]
        assert q.peek() == (min(model.values()) if model else None)
        assert len(q) == len(model)
        assert all(q.deadline(k) == d for k, d in model.items())


def test_virtual_clock_moves_forward_only() -> None:
    t0 = datetime(2026, 1, 1)
    clock = VirtualClock(t0)
    assert clock.advance(timedelta(hours=1)) == t0 + timedelta(hours=1)
    clock.set(t0 + timedelta(days=1))
    assert clock.now() == t0 + timedelta(days=1)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set(t0)


def test_wall_clock_is_naive_utc() -> None:
    now = WallClock().now()
    assert now.tzinfo is None
    assert abs(now - datetime.utcnow()) < timedelta(seconds=5)
