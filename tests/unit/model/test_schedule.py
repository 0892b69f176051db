"""Cron instants: at-or-before and strictly-after, to the microsecond."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from segflow.model.schedule import fired_between, is_valid, latest_by, next_after

US = timedelta(microseconds=1)
HOURLY = "0 * * * *"


def test_an_instant_on_the_schedule_is_its_own_latest() -> None:
    t = datetime(2026, 3, 1, 10, 0)
    assert latest_by(HOURLY, t) == t
    assert latest_by(HOURLY, t - US) == datetime(2026, 3, 1, 9, 0)
    assert next_after(HOURLY, t) == datetime(2026, 3, 1, 11, 0)
    assert next_after(HOURLY, t - US) == t


def test_fired_between_is_open_at_the_start_and_closed_at_the_end() -> None:
    t = datetime(2026, 3, 1, 10, 0)
    assert fired_between(HOURLY, t - US, t)
    assert not fired_between(HOURLY, t, t + timedelta(minutes=59))
    assert not fired_between(HOURLY, t - timedelta(minutes=1), t - US)


def test_validity() -> None:
    assert is_valid("*/5 * * * *")
    assert not is_valid("every day")
    assert not is_valid("61 * * * *")


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_latest_and_next_bracket_every_instant(t: datetime) -> None:
    last, nxt = latest_by(HOURLY, t), next_after(HOURLY, t)
    assert last <= t < nxt
    assert nxt - last == timedelta(hours=1)
    assert latest_by(HOURLY, nxt) == nxt
    assert next_after(HOURLY, last) == nxt
