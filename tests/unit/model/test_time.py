from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from segflow.model.time import (
    format_instant,
    from_us,
    naive_utc,
    parse_instant,
    to_us,
    utcnow,
)


def test_microseconds_round_trip_exactly() -> None:
    t = datetime(2026, 3, 1, 12, 30, 45, 123456)
    assert from_us(to_us(t)) == t
    assert to_us(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000


def test_aware_instant_becomes_naive_utc() -> None:
    t = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert naive_utc(t) == datetime(2026, 3, 1, 12, 0)
    assert naive_utc(datetime(2026, 3, 1, 12, 0)) == datetime(2026, 3, 1, 12, 0)


def test_parse_and_format_agree() -> None:
    t = parse_instant("2026-03-01T14:00:00+02:00")
    assert t == parse_instant("2026-03-01T12:00:00Z")
    assert format_instant(t) == "2026-03-01T12:00:00.000000Z"


def test_parse_rejects_text_that_is_no_instant() -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 timestamp"):
        parse_instant("yesterday")


def test_utcnow_is_naive_and_current() -> None:
    now = utcnow()
    assert now.tzinfo is None
    assert abs(datetime.now(UTC).replace(tzinfo=None) - now) < timedelta(seconds=5)
